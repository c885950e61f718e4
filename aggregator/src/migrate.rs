//! `aggregator migrate`: applies the versioned migrations of the `store` crate, recording each
//! in `<prefix>_admin.schema_migrations` with a checksum. Idempotent: applied versions are
//! skipped, and every statement is `IF NOT EXISTS` (an `ADD COLUMN` is skipped when the column
//! exists) so a run interrupted mid-migration can be repeated. On a cluster every statement
//! runs `ON CLUSTER` in its cluster form (`store::cluster`), and [`complete_nodes`] gives a
//! node that joined later (a new shard, a replica rebuilt on an empty disk) the tables it lacks.

use std::collections::{BTreeMap, HashSet};

use clickhouse::Client;
use store::{BOOTSTRAP, Databases, MIGRATIONS, Migration, MigrationRow, added_column, cluster, split_statements};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("ClickHouse refused {what}: {source}")]
    ClickHouse { what: String, source: clickhouse::error::Error },
    #[error(transparent)]
    Cluster(#[from] cluster::Unsupported),
    #[error(
        "migration {version} ({name}) was changed after it was applied (checksum {recorded} in {table}, {current} now); \
         add a new migration instead of editing an applied one"
    )]
    Changed { version: u32, name: String, table: String, recorded: String, current: String },
}

/// What a run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub applied: Vec<u32>,
    pub already_applied: Vec<u32>,
}

pub async fn migrate(client: &Client, databases: &Databases, now: u32) -> Result<Report, MigrateError> {
    let table = databases.migrations();
    for statement in statements(BOOTSTRAP, databases)? {
        execute(client, &statement).await?;
    }
    let applied: Vec<MigrationRow> = client
        .query(&format!("SELECT ?fields FROM {table} ORDER BY version"))
        .fetch_all()
        .await
        .map_err(|source| MigrateError::ClickHouse { what: format!("reading {table}"), source })?;

    let mut report = Report::default();
    for migration in MIGRATIONS {
        let current = checksum(migration);
        if let Some(done) = applied.iter().find(|a| a.version == migration.version) {
            if done.checksum != current {
                return Err(MigrateError::Changed {
                    version: migration.version,
                    name: migration.name.to_owned(),
                    table,
                    recorded: done.checksum.clone(),
                    current,
                });
            }
            report.already_applied.push(migration.version);
            continue;
        }
        for statement in statements(migration.sql, databases)? {
            if !column_exists(client, &statement).await? {
                execute(client, &statement).await?;
            }
        }
        let record = MigrationRow {
            version: migration.version,
            name: migration.name.to_owned(),
            checksum: current,
            applied_at: now,
        };
        insert_record(client, &table, &record).await.map_err(|source| MigrateError::ClickHouse {
            what: format!("recording migration {}", migration.version),
            source,
        })?;
        tracing::info!(version = migration.version, name = migration.name, "migration applied");
        report.applied.push(migration.version);
    }
    Ok(report)
}

/// On a cluster, creates on each node the installation's tables it lacks, each from the
/// definition of a node that has it: `ON CLUSTER` DDL cannot, since the migrations that made
/// them are recorded as applied. `SHOW CREATE TABLE` keeps the `{shard}` and `{replica}` macros,
/// so an event store becomes the node's replica of its own shard and a table replicated on
/// every node gets a new replica, which copies the rows from the others. Tables come before the
/// materialized views that read them. Returns how many tables each node got, in `nodes` order.
pub async fn complete_nodes(nodes: &[Client], databases: &Databases) -> Result<Vec<usize>, MigrateError> {
    let names: Vec<String> = databases.all().iter().map(|d| format!("'{d}'")).collect();
    let list = format!("SELECT database, name, engine FROM system.tables WHERE database IN ({})", names.join(", "));
    let mut present = Vec::with_capacity(nodes.len());
    for node in nodes {
        let tables: Vec<(String, String, String)> = node
            .query(&list)
            .fetch_all()
            .await
            .map_err(|source| MigrateError::ClickHouse { what: "listing a node's tables".into(), source })?;
        present.push(tables);
    }
    // Every table some node has: (views last, database, name) -> the first node that has it.
    let mut wanted = BTreeMap::new();
    for (i, tables) in present.iter().enumerate() {
        for (database, name, engine) in tables {
            wanted.entry((engine == "MaterializedView", database.clone(), name.clone())).or_insert(i);
        }
    }
    let mut created = vec![0; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let has: HashSet<(&str, &str)> = present[i].iter().map(|(d, n, _)| (d.as_str(), n.as_str())).collect();
        for ((_, database, name), &source) in &wanted {
            if has.contains(&(database.as_str(), name.as_str())) {
                continue;
            }
            let definition: String =
                nodes[source].query(&format!("SHOW CREATE TABLE {database}.{name}")).fetch_one().await.map_err(
                    |source| MigrateError::ClickHouse { what: format!("SHOW CREATE TABLE {database}.{name}"), source },
                )?;
            execute(node, &format!("CREATE DATABASE IF NOT EXISTS {database}")).await?;
            execute(node, &if_not_exists(&definition)).await?;
            tracing::info!(node = i, table = %format!("{database}.{name}"), "table created on a node that lacked it");
            created[i] += 1;
        }
    }
    Ok(created)
}

/// `CREATE [MATERIALIZED] VIEW|TABLE x` as `... IF NOT EXISTS x`: another run may be at it.
fn if_not_exists(definition: &str) -> String {
    for kind in ["CREATE TABLE ", "CREATE MATERIALIZED VIEW ", "CREATE VIEW "] {
        if let Some(rest) = definition.strip_prefix(kind) {
            return format!("{kind}IF NOT EXISTS {rest}");
        }
    }
    definition.to_owned()
}

async fn insert_record(client: &Client, table: &str, record: &MigrationRow) -> Result<(), clickhouse::error::Error> {
    let mut insert = client.insert_unescaped::<MigrationRow>(table).await?;
    insert.write(record).await?;
    insert.end().await
}

/// The statements of `sql` rendered for the installation, in their cluster form on a cluster.
fn statements(sql: &str, databases: &Databases) -> Result<Vec<String>, MigrateError> {
    let rendered = split_statements(&databases.render(sql));
    let Some(cluster) = databases.cluster() else { return Ok(rendered) };
    let mut out = Vec::new();
    for statement in rendered {
        out.extend(cluster::statements(&statement, databases, cluster)?);
    }
    Ok(out)
}

/// Whether `statement` adds a column that is already there (an interrupted earlier run).
async fn column_exists(client: &Client, statement: &str) -> Result<bool, MigrateError> {
    let Some((database, table, column)) = added_column(statement) else { return Ok(false) };
    let count: u64 = client
        .query("SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?")
        .bind(database)
        .bind(table)
        .bind(column)
        .fetch_one()
        .await
        .map_err(|source| MigrateError::ClickHouse {
            what: format!("reading the columns of {database}.{table}"),
            source,
        })?;
    Ok(count > 0)
}

async fn execute(client: &Client, sql: &str) -> Result<(), MigrateError> {
    client
        .query(sql)
        .execute()
        .await
        .map_err(|source| MigrateError::ClickHouse { what: sql.lines().next().unwrap_or_default().to_owned(), source })
}

fn checksum(migration: &Migration) -> String {
    blake3::hash(migration.sql.as_bytes()).to_hex()[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_definition_does_not_fail_when_the_table_appeared_meanwhile() {
        assert_eq!(
            if_not_exists("CREATE TABLE a.b (x UInt8) ENGINE = Null"),
            "CREATE TABLE IF NOT EXISTS a.b (x UInt8) ENGINE = Null"
        );
        assert_eq!(
            if_not_exists("CREATE MATERIALIZED VIEW a.v TO a.t (x UInt8) AS SELECT * FROM a.s"),
            "CREATE MATERIALIZED VIEW IF NOT EXISTS a.v TO a.t (x UInt8) AS SELECT * FROM a.s"
        );
    }
}
