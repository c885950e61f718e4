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
    /// The ClickHouse cluster the installation runs on (`crate::cluster`), if any.
    cluster: Option<String>,
}

/// Which servers a query of a system table covers on a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One replica of each shard: each row of a sharded table counted once.
    Shards,
    /// Every node: what is left anywhere.
    Nodes,
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
            cluster: None,
        })
    }

    /// The same installation on cluster `cluster` (`None`: one server).
    pub fn on_cluster(mut self, cluster: Option<&str>) -> Self {
        self.cluster = cluster.map(str::to_owned);
        self
    }

    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// What an `ALTER TABLE` of an event store (`<db>.events`: `DROP PARTITION`, `DELETE`)
    /// names: the store on one server; on a cluster its replicated local parts, `ON CLUSTER`
    /// (the `Distributed` table holds no rows to alter).
    pub fn events_alter(&self, events: &str) -> String {
        match &self.cluster {
            None => events.to_owned(),
            Some(cluster) => format!("{events}{} ON CLUSTER {cluster}", crate::cluster::LOCAL),
        }
    }

    /// The name system tables give the event stores: `events`, or `events_local` on a cluster.
    pub fn events_table_name(&self) -> String {
        let local = if self.cluster.is_some() { crate::cluster::LOCAL } else { "" };
        format!("events{local}")
    }

    /// `system.<table>` of the server; on a cluster, of the servers of `scope` (the `cluster`
    /// table function, as the cluster user).
    pub fn system(&self, table: &str, scope: Scope) -> String {
        match (&self.cluster, scope) {
            (None, _) => format!("system.{table}"),
            (Some(cluster), Scope::Shards) => format!("cluster('{cluster}', system, {table})"),
            (Some(cluster), Scope::Nodes) => {
                format!("cluster('{}', system, {table})", crate::cluster::nodes_cluster(cluster))
            }
        }
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
