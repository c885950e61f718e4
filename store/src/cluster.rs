//! Migrations on a ClickHouse cluster (docs/operations.md, "Running a cluster"). The migration
//! files are written for one server; in cluster mode each rendered statement is rewritten here,
//! so both topologies share one source of truth for every table:
//!
//! - every `CREATE`, `DROP` and `ALTER` runs `ON CLUSTER`;
//! - the event stores are sharded: `<db>.events_local` is a `Replicated*MergeTree` per shard,
//!   and `<db>.events` a `Distributed` table over them, which every query reads as before;
//! - the ingest tables are sharded the same way: `<ingest>.<table>` is `Distributed` over the
//!   `Null` tables `<ingest>.<table>_local`, whose views write into the stage Buffers and the
//!   local stores of their own node. So the collector's insert is split by [`SHARDING_KEY`]:
//!   one visitor's rows stay on one shard, where visits and distinct counts are computed;
//! - every other table (salts, blocklist, erasures, audit, rollups, migrations) is replicated
//!   on every node (one ZooKeeper path for the whole cluster), so any node answers for it.
//!
//! Replicated tables' paths and replica names use the `{cluster}`, `{shard}` and `{replica}`
//! macros of each node's config (config/clickhouse/cluster.xml).
//!
//! ALTERs differ by table: 18.16 refuses `ON CLUSTER` for a table that is not replicated on a
//! cluster whose shards are, so the Distributed, Buffer and Null tables are altered on
//! [`nodes_cluster`], which has every node as a shard of its own; a table replicated on every
//! node is altered on the node asked (ZooKeeper carries it to the others).

use crate::Databases;

/// How a row chooses its shard: its visitor pseudonym, so that one visitor's rows (visits,
/// distinct counts) are on one shard. Anonymous rows (visitor id 0, Do Not Track) are spread
/// by content rather than all sent to one shard; deterministic, so a replayed batch is split
/// as it was the first time and each shard's block deduplicates.
pub const SHARDING_KEY: &str = "if(visitor_id = 0, cityHash64(site, ts, path), visitor_id)";

/// The suffix of a sharded table's local part.
pub const LOCAL: &str = "_local";

/// The cluster of every node as its own shard: `<cluster>_nodes` in `remote_servers`.
pub fn nodes_cluster(cluster: &str) -> String {
    format!("{cluster}_nodes")
}

/// MergeTree engines that have a replicated twin.
const MERGE_TREES: [&str; 5] =
    ["MergeTree", "ReplacingMergeTree", "SummingMergeTree", "AggregatingMergeTree", "CollapsingMergeTree"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot run this migration statement on a cluster: {0}")]
pub struct Unsupported(String);

/// The statements that do on cluster `cluster` what `statement` (rendered, for one server)
/// does on one server.
pub fn statements(statement: &str, databases: &Databases, cluster: &str) -> Result<Vec<String>, Unsupported> {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let unsupported = || Unsupported(statement.lines().next().unwrap_or_default().to_owned());
    let upper = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    let sharded = Sharded::new(databases);
    let on = format!("ON CLUSTER {cluster}");
    match (upper(0).as_str(), upper(1).as_str()) {
        ("CREATE", "DATABASE") | ("DROP", "TABLE") => {
            // `CREATE DATABASE IF NOT EXISTS x`, `DROP TABLE IF EXISTS x`: the name is last.
            let statement = statement.trim_end();
            let name = *words.last().ok_or_else(unsupported)?;
            let mut out = vec![format!("{statement} {on}")];
            if sharded.contains(name) {
                let before = &statement[..statement.len() - name.len()];
                out.push(format!("{before}{name}{LOCAL} {on}"));
            }
            Ok(out)
        }
        ("CREATE", "TABLE") => create_table(statement, &words, &sharded, cluster).ok_or_else(unsupported),
        ("CREATE", "MATERIALIZED") => {
            // `CREATE MATERIALIZED VIEW IF NOT EXISTS v TO t AS SELECT * FROM src`: a view on
            // a sharded source reads its local part.
            let view = words.get(6).ok_or_else(unsupported)?;
            let source = *words.last().ok_or_else(unsupported)?;
            let mut rewritten = statement.replacen(view, &format!("{view} {on}"), 1);
            if sharded.contains(source) {
                let at = rewritten.rfind(source).ok_or_else(unsupported)?;
                rewritten.replace_range(at.., &format!("{source}{LOCAL}"));
            }
            Ok(vec![rewritten])
        }
        ("ALTER", "TABLE") => {
            let table = *words.get(2).ok_or_else(unsupported)?;
            let on_table = |name: &str, on: &str| statement.replacen(table, &format!("{name} {on}"), 1);
            let every_node = format!("ON CLUSTER {}", nodes_cluster(cluster));
            Ok(if sharded.is_store(table) {
                // The local part first: the Distributed table reads columns it must find there.
                vec![on_table(&format!("{table}{LOCAL}"), &on), on_table(table, &every_node)]
            } else if sharded.is_ingest(table) {
                vec![on_table(&format!("{table}{LOCAL}"), &every_node), on_table(table, &every_node)]
            } else if sharded.is_stage(table) {
                vec![on_table(table, &every_node)]
            } else {
                vec![statement.to_owned()]
            })
        }
        _ => Err(unsupported()),
    }
}

/// The sharded tables of an installation: the event stores and their ingest twins; and the
/// stage Buffers, which are local to each node.
struct Sharded {
    /// `(ingest table, the store it feeds)`.
    ingest: [(String, String); 2],
    /// `<stage>.`: the database part of the Buffers' names.
    stage: String,
}

impl Sharded {
    fn new(databases: &Databases) -> Self {
        Self {
            ingest: [
                (databases.ingest_audience(), databases.audience_events()),
                (databases.ingest_troubleshooting(), databases.troubleshooting_events()),
            ],
            stage: format!("{}.", databases.stage()),
        }
    }

    fn is_store(&self, table: &str) -> bool {
        self.ingest.iter().any(|(_, store)| store == table)
    }

    fn is_stage(&self, table: &str) -> bool {
        table.starts_with(&self.stage)
    }

    fn contains(&self, table: &str) -> bool {
        self.is_store(table) || self.is_ingest(table)
    }

    fn is_ingest(&self, table: &str) -> bool {
        self.ingest.iter().any(|(i, _)| i == table)
    }
}

/// `CREATE TABLE IF NOT EXISTS db.t [AS other] (...) ENGINE = E ...`.
fn create_table(statement: &str, words: &[&str], sharded: &Sharded, cluster: &str) -> Option<Vec<String>> {
    let table = *words.get(5)?;
    let (database, name) = table.split_once('.')?;
    let on = format!("ON CLUSTER {cluster}");
    let engine_at = statement.find("ENGINE = ")? + "ENGINE = ".len();
    let (head, engine) = statement.split_at(engine_at);
    let engine_name: String = engine.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    // `AS other` copies a sharded store's columns from its local part.
    let as_other = (words.get(6).is_some_and(|w| w.eq_ignore_ascii_case("AS"))).then(|| words[7]);
    let head = match as_other.filter(|other| sharded.contains(other)) {
        Some(other) => head.replacen(other, &format!("{other}{LOCAL}"), 1),
        None => head.to_owned(),
    };

    if MERGE_TREES.contains(&engine_name.as_str()) {
        let args = engine[engine_name.len()..].strip_prefix('(').and_then(|rest| rest.split_once(')'));
        let (args, tail) = match args {
            Some((args, tail)) => (format!(", {args}"), tail),
            None => (String::new(), &engine[engine_name.len()..]),
        };
        let group = if sharded.contains(table) { "{shard}" } else { "all" };
        let replicated = format!(
            "Replicated{engine_name}('/clickhouse/{{cluster}}/tables/{group}/{database}/{name}', '{{replica}}'{args}){tail}"
        );
        if !sharded.contains(table) {
            return Some(vec![format!("{}{replicated}", head.replacen(table, &format!("{table} {on}"), 1))]);
        }
        let local = format!("{table}{LOCAL}");
        return Some(vec![
            format!("{}{replicated}", head.replacen(table, &format!("{local} {on}"), 1)),
            distributed(table, cluster),
        ]);
    }
    match engine_name.as_str() {
        // A stage Buffer writes into its own node's local store.
        "Buffer" => {
            let engine = engine.replacen(", events,", &format!(", events{LOCAL},"), 1);
            Some(vec![format!("{}{engine}", head.replacen(table, &format!("{table} {on}"), 1))])
        }
        // An ingest Null table becomes the local part under a Distributed table.
        "Null" if sharded.is_ingest(table) => {
            let local = format!("{table}{LOCAL}");
            Some(vec![
                format!("{}{engine}", head.replacen(table, &format!("{local} {on}"), 1)),
                distributed(table, cluster),
            ])
        }
        _ => None,
    }
}

/// The Distributed table `table` over the local parts `table_local` of every shard.
fn distributed(table: &str, cluster: &str) -> String {
    let (database, name) = table.split_once('.').expect("a qualified table name");
    format!(
        "CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {cluster} AS {table}{LOCAL}\n\
         ENGINE = Distributed({cluster}, {database}, {name}{LOCAL}, {SHARDING_KEY})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MIGRATIONS, split_statements};

    fn on_cluster(sql: &str) -> Vec<String> {
        let databases = Databases::new("ws").unwrap();
        statements(&databases.render(sql), &databases, "c").unwrap()
    }

    #[test]
    fn event_stores_become_replicated_shards_under_a_distributed_table() {
        let sql = "CREATE TABLE IF NOT EXISTS {audience}.events\n(\n    date Date\n)\nENGINE = MergeTree\nPARTITION BY date\nORDER BY (site, type, ts)";
        assert_eq!(
            on_cluster(sql),
            [
                "CREATE TABLE IF NOT EXISTS ws_audience.events_local ON CLUSTER c\n(\n    date Date\n)\n\
                 ENGINE = ReplicatedMergeTree('/clickhouse/{cluster}/tables/{shard}/ws_audience/events', '{replica}')\n\
                 PARTITION BY date\nORDER BY (site, type, ts)",
                &format!(
                    "CREATE TABLE IF NOT EXISTS ws_audience.events ON CLUSTER c AS ws_audience.events_local\n\
                     ENGINE = Distributed(c, ws_audience, events_local, {SHARDING_KEY})"
                ),
            ]
        );
    }

    #[test]
    fn other_tables_are_replicated_on_every_node_with_their_arguments() {
        let sql = "CREATE TABLE IF NOT EXISTS {meta}.blocklist\n(\n    seq UInt64\n)\nENGINE = ReplacingMergeTree(seq)\nORDER BY (site)";
        assert_eq!(
            on_cluster(sql),
            ["CREATE TABLE IF NOT EXISTS ws_meta.blocklist ON CLUSTER c\n(\n    seq UInt64\n)\n\
              ENGINE = ReplicatedReplacingMergeTree('/clickhouse/{cluster}/tables/all/ws_meta/blocklist', '{replica}', seq)\n\
              ORDER BY (site)"]
        );
    }

    #[test]
    fn the_ingest_path_is_sharded_and_each_node_feeds_its_own_store() {
        let ingest = "CREATE TABLE IF NOT EXISTS {ingest}.audience AS {audience}.events\nENGINE = Null";
        assert_eq!(
            on_cluster(ingest),
            [
                "CREATE TABLE IF NOT EXISTS ws_ingest.audience_local ON CLUSTER c AS ws_audience.events_local\nENGINE = Null",
                &format!(
                    "CREATE TABLE IF NOT EXISTS ws_ingest.audience ON CLUSTER c AS ws_ingest.audience_local\n\
                     ENGINE = Distributed(c, ws_ingest, audience_local, {SHARDING_KEY})"
                ),
            ]
        );
        let stage = "CREATE TABLE IF NOT EXISTS {stage}.audience AS {audience}.events\nENGINE = Buffer({audience}, events, 1, 0, 0, 0, 0, 0, 0)";
        assert_eq!(
            on_cluster(stage),
            ["CREATE TABLE IF NOT EXISTS ws_stage.audience ON CLUSTER c AS ws_audience.events_local\n\
              ENGINE = Buffer(ws_audience, events_local, 1, 0, 0, 0, 0, 0, 0)"]
        );
        let view = "CREATE MATERIALIZED VIEW IF NOT EXISTS {ingest}.audience_to_store TO {stage}.audience\nAS SELECT * FROM {ingest}.audience";
        assert_eq!(
            on_cluster(view),
            ["CREATE MATERIALIZED VIEW IF NOT EXISTS ws_ingest.audience_to_store ON CLUSTER c TO ws_stage.audience\n\
              AS SELECT * FROM ws_ingest.audience_local"]
        );
    }

    #[test]
    fn databases_drops_and_added_columns_reach_every_part() {
        assert_eq!(
            on_cluster("CREATE DATABASE IF NOT EXISTS {meta}"),
            ["CREATE DATABASE IF NOT EXISTS ws_meta ON CLUSTER c"]
        );
        assert_eq!(
            on_cluster("DROP TABLE IF EXISTS {rollups}.daily_pages"),
            ["DROP TABLE IF EXISTS ws_rollups.daily_pages ON CLUSTER c"]
        );
        assert_eq!(
            on_cluster("ALTER TABLE {troubleshooting}.events ADD COLUMN bot_reason String"),
            [
                "ALTER TABLE ws_troubleshooting.events_local ON CLUSTER c ADD COLUMN bot_reason String",
                "ALTER TABLE ws_troubleshooting.events ON CLUSTER c_nodes ADD COLUMN bot_reason String",
            ]
        );
        assert_eq!(
            on_cluster("ALTER TABLE {stage}.troubleshooting ADD COLUMN bot_reason String"),
            ["ALTER TABLE ws_stage.troubleshooting ON CLUSTER c_nodes ADD COLUMN bot_reason String"]
        );
        assert_eq!(
            on_cluster("ALTER TABLE {ingest}.troubleshooting ADD COLUMN bot_reason String"),
            [
                "ALTER TABLE ws_ingest.troubleshooting_local ON CLUSTER c_nodes ADD COLUMN bot_reason String",
                "ALTER TABLE ws_ingest.troubleshooting ON CLUSTER c_nodes ADD COLUMN bot_reason String",
            ]
        );
        assert_eq!(
            on_cluster("ALTER TABLE {meta}.salts ADD COLUMN note String"),
            ["ALTER TABLE ws_meta.salts ADD COLUMN note String"],
            "replicated on every node: ZooKeeper carries it"
        );
    }

    /// Every statement of every migration has a cluster form.
    #[test]
    fn every_migration_runs_on_a_cluster() {
        let databases = Databases::new("ws").unwrap();
        for migration in MIGRATIONS {
            for statement in split_statements(&databases.render(migration.sql)) {
                let out = statements(&statement, &databases, "c")
                    .unwrap_or_else(|e| panic!("migration {}: {e}", migration.version));
                assert!(out.iter().all(|s| s.contains(" ON CLUSTER c")), "{out:#?}");
                assert!(!out.iter().any(|s| s.contains("ENGINE = MergeTree")), "{out:#?}");
            }
        }
    }
}
