/// The names of the project's databases, derived from one configured prefix so that several
/// installations (or parallel tests) can share one ClickHouse server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Databases {
    audience: String,
    troubleshooting: String,
    meta: String,
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
            audience: format!("{prefix}_audience"),
            troubleshooting: format!("{prefix}_troubleshooting"),
            meta: format!("{prefix}_meta"),
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

    /// Salts and bookkeeping (migrations); readable by the ingest and admin roles only.
    pub fn meta(&self) -> &str {
        &self.meta
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
        format!("{}.audit", self.meta)
    }

    pub fn blocklist(&self) -> String {
        format!("{}.blocklist", self.meta)
    }

    pub fn migrations(&self) -> String {
        format!("{}.schema_migrations", self.meta)
    }

    /// Replaces `{audience}`, `{troubleshooting}` and `{meta}` in SQL text.
    pub fn render(&self, sql: &str) -> String {
        sql.replace("{audience}", &self.audience)
            .replace("{troubleshooting}", &self.troubleshooting)
            .replace("{meta}", &self.meta)
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
