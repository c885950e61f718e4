//! Retention: drops whole daily partitions of the event tables once they are older than the
//! store's retention, which works on every ClickHouse version, and audits each drop.

use clickhouse::{Client, Row};
use serde::Deserialize;
use store::{AuditRow, Databases, day_number};

use crate::{audit, config::RetentionConfig};

#[derive(Debug, Row, Deserialize)]
struct Partition {
    partition: String,
    day: u32,
    rows: u64,
}

/// Drops, in both stores, the partitions of days before `today - retention days`: rows live
/// between N and N + 1 days. Returns one audit row per dropped partition (already recorded).
pub async fn enforce(
    client: &Client,
    databases: &Databases,
    config: &RetentionConfig,
    now: u32,
) -> Result<Vec<AuditRow>, clickhouse::error::Error> {
    let today = u32::from(day_number(now));
    let mut dropped = Vec::new();
    for (db, days) in
        [(databases.audience(), config.audience_days), (databases.troubleshooting(), config.troubleshooting_days)]
    {
        let oldest_kept = today.saturating_sub(days);
        let partitions = client
            .query(
                "SELECT partition, toUInt32(min(min_date)) AS day, sum(rows) AS rows FROM system.parts \
                 WHERE database = ? AND table = 'events' AND active GROUP BY partition ORDER BY day",
            )
            .bind(db)
            .fetch_all::<Partition>()
            .await?;
        for p in partitions.into_iter().filter(|p| p.day < oldest_kept) {
            // The partition of a Date key reads `YYYY-MM-DD`; anything else is not ours to drop.
            if !is_date_literal(&p.partition) {
                tracing::warn!(database = db, partition = p.partition, "unexpected partition name; not dropped");
                continue;
            }
            let table = format!("{db}.events");
            client.query(&format!("ALTER TABLE {table} DROP PARTITION '{}'", p.partition)).execute().await?;
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
    Ok(dropped)
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
        for bad in ["20261124", "2026-11-24'; DROP", "tuple()", ""] {
            assert!(!is_date_literal(bad), "{bad}");
        }
    }
}
