//! Retention: drops whole daily partitions of the event tables once they are older than the
//! store's retention, which works on every ClickHouse version, and audits each drop. The
//! current visitors of the day before yesterday go too (counts only, so not audited).

use clickhouse::{Client, Row};
use serde::Deserialize;
use store::{AuditRow, Databases, Scope, day_number};

use crate::{audit, config::RetentionConfig, partitions::Partitions};

#[derive(Debug, Row, Deserialize)]
struct Partition {
    partition: String,
    rows: u64,
}

/// Drops, in both stores, the partitions of days before `today - retention days`: rows live
/// between N and N + 1 days. Returns one audit row per dropped partition (already recorded).
pub async fn enforce(
    client: &Client,
    partitions: &Partitions,
    databases: &Databases,
    config: &RetentionConfig,
    now: u32,
) -> Result<Vec<AuditRow>, clickhouse::error::Error> {
    let today = u32::from(day_number(now));
    let mut dropped = Vec::new();
    for (db, days) in
        [(databases.audience(), config.audience_days), (databases.troubleshooting(), config.troubleshooting_days)]
    {
        let table = format!("{db}.events");
        let stored_as = databases.events_table_name();
        // On a cluster, each shard's parts (one replica each): rows counted once.
        let parts = databases.system("parts", Scope::Shards);
        for p in old_partitions(client, &parts, db, &stored_as, today.saturating_sub(days.get())).await? {
            partitions.drop_partition(&format!("{db}.{stored_as}"), &format!("'{}'", p.partition)).await?;
            tracing::info!(table, partition = p.partition, rows = p.rows, "retention: partition dropped");
            let row = audit::deletion(
                now,
                "retention_drop",
                format!("{table} partition {}", p.partition),
                p.rows,
                format!("older than {days} days"),
            );
            // Recorded at once, so a failure later in the pass loses no audit row.
            audit::record(client, databases, std::slice::from_ref(&row)).await?;
            dropped.push(row);
        }
    }
    let current = store::CURRENT_VISITORS_TABLE;
    for p in old_partitions(client, "system.parts", databases.rollups(), current, today.saturating_sub(1)).await? {
        partitions.drop_partition(&format!("{}.{current}", databases.rollups()), &format!("'{}'", p.partition)).await?;
    }
    Ok(dropped)
}

/// The daily partitions of `db.table` before day `oldest_kept`, from the system table `parts`
/// (`system.parts`, or its cluster form).
async fn old_partitions(
    client: &Client,
    parts: &str,
    db: &str,
    table: &str,
    oldest_kept: u32,
) -> Result<Vec<Partition>, clickhouse::error::Error> {
    let partitions = client
        .query(&format!(
            "SELECT partition, sum(rows) AS rows FROM {parts} \
             WHERE database = ? AND table = ? AND active GROUP BY partition ORDER BY partition"
        ))
        .bind(db)
        .bind(table)
        .fetch_all::<Partition>()
        .await?;
    // A daily partition reads `YYYY-MM-DD` (for a `DateTime` key too, where system.parts has
    // no min_date); anything else is not ours to drop.
    Ok(partitions
        .into_iter()
        .filter(|p| match day_of(&p.partition) {
            Some(day) => day < oldest_kept,
            None => {
                tracing::warn!(database = db, table, partition = p.partition, "unexpected partition name; not dropped");
                false
            }
        })
        .collect())
}

/// The day number of a `YYYY-MM-DD` partition.
fn day_of(partition: &str) -> Option<u32> {
    if !is_date_literal(partition) {
        return None;
    }
    let date = chrono::NaiveDate::parse_from_str(partition, "%Y-%m-%d").ok()?;
    u32::try_from(date.signed_duration_since(chrono::NaiveDate::default()).num_days()).ok()
}

fn is_date_literal(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_date_partitions() {
        assert!(is_date_literal("2026-11-24"));
        assert_eq!(day_of("1970-01-02"), Some(1));
        assert_eq!(day_of("2025-11-24"), Some(20_416));
        assert_eq!(day_of("2025-13-40"), None);
        for bad in ["20261124", "2026-11-24'; DROP", "tuple()", ""] {
            assert!(!is_date_literal(bad), "{bad}");
        }
    }
}
