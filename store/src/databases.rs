/// The names of the project's databases, derived from one configured prefix so that several
/// installations (or parallel tests) can share one ClickHouse server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Databases {
    prefix: String,
    audience: String,
    troubleshooting: String,
    meta: String,
    admin: String,
    ingest: String,
    stage: String,
    rollups: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a valid database prefix: use 1 to 40 lower-case letters, digits or '_', starting with a letter")]
pub struct InvalidPrefix(String);

impl Databases {
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let valid = (1..=40).contains(&prefix.len())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(InvalidPrefix(prefix.to_owned()));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            audience: format!("{prefix}_audience"),
            troubleshooting: format!("{prefix}_troubleshooting"),
            meta: format!("{prefix}_meta"),
            admin: format!("{prefix}_admin"),
            ingest: format!("{prefix}_ingest"),
            stage: format!("{prefix}_stage"),
            rollups: format!("{prefix}_rollups"),
        })
    }

    /// Purpose A: audience analysis.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Purpose T: troubleshooting.
    pub fn troubleshooting(&self) -> &str {
        &self.troubleshooting
    }

    /// The configured prefix, which also prefixes the role users' names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Salts, the blocklist and the erasures: what collectors read (the `ingest_meta` user)
    /// besides admin.
    pub fn meta(&self) -> &str {
        &self.meta
    }

    /// Migrations and the audit trail: admin only.
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// Null tables the `ingest` user inserts into; their materialized views route the rows on.
    pub fn ingest(&self) -> &str {
        &self.ingest
    }

    /// Pass-through Buffer tables between the ingest views and the stores (see 0003_roles.sql).
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// k-filtered daily rollups without pseudonyms: what analysts (and SREs) read.
    pub fn rollups(&self) -> &str {
        &self.rollups
    }

    /// The tables the collector inserts into, in the ingest database.
    pub fn ingest_audience(&self) -> String {
        format!("{}.audience", self.ingest)
    }

    pub fn ingest_troubleshooting(&self) -> String {
        format!("{}.troubleshooting", self.ingest)
    }

    /// Every database of the installation, in creation order.
    pub fn all(&self) -> [&str; 7] {
        [&self.audience, &self.troubleshooting, &self.meta, &self.admin, &self.stage, &self.ingest, &self.rollups]
    }

    pub fn audience_events(&self) -> String {
        format!("{}.events", self.audience)
    }

    pub fn troubleshooting_events(&self) -> String {
        format!("{}.events", self.troubleshooting)
    }

    pub fn salts(&self) -> String {
        format!("{}.salts", self.meta)
    }

    pub fn audit(&self) -> String {
        format!("{}.audit", self.admin)
    }

    pub fn blocklist(&self) -> String {
        format!("{}.blocklist", self.meta)
    }

    pub fn erasures(&self) -> String {
        format!("{}.erasures", self.meta)
    }

    pub fn migrations(&self) -> String {
        format!("{}.schema_migrations", self.admin)
    }

    /// Replaces the `{audience}`, `{troubleshooting}`, `{meta}`, `{admin}`, `{ingest}`,
    /// `{stage}` and `{rollups}` placeholders in SQL text.
    pub fn render(&self, sql: &str) -> String {
        sql.replace("{audience}", &self.audience)
            .replace("{troubleshooting}", &self.troubleshooting)
            .replace("{meta}", &self.meta)
            .replace("{admin}", &self.admin)
            .replace("{ingest}", &self.ingest)
            .replace("{stage}", &self.stage)
            .replace("{rollups}", &self.rollups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_names_from_prefix() {
        let db = Databases::new("ws_1").unwrap();
        assert_eq!(db.audience_events(), "ws_1_audience.events");
        assert_eq!(db.render("SELECT 1 FROM {meta}.salts"), "SELECT 1 FROM ws_1_meta.salts");
    }

    #[test]
    fn rejects_prefixes_that_need_quoting() {
        for bad in ["", "1abc", "Abc", "a-b", "a.b", "a`b", &"a".repeat(41)] {
            assert!(Databases::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
