//! Salt creation: the current and the next period always have a salt, created ahead of time
//! from the operating system's random source. Salts are written as RowBinary, never as SQL
//! text, so they cannot end up in a server's query log.

use std::collections::HashSet;

use clickhouse::Client;
use clickhouse::Row;
use serde::Deserialize;
use store::{AuditRow, Databases, SaltRow};

use crate::{audit, partitions::Partitions};

#[derive(Debug, thiserror::Error)]
pub enum SaltError {
    #[error("ClickHouse refused {what}: {source}")]
    ClickHouse { what: &'static str, source: clickhouse::error::Error },
    #[error("the operating system's random source failed: {0}")]
    Random(getrandom::Error),
}

/// The start of the period containing `t`.
pub fn period_start(t: u32, period_s: u32) -> u32 {
    t - t % period_s
}

/// Creates the salts missing for the period containing `now` and the one after it; returns the
/// starts of the periods it created.
pub async fn ensure(client: &Client, databases: &Databases, period_s: u32, now: u32) -> Result<Vec<u32>, SaltError> {
    let table = databases.salts();
    let existing: HashSet<u32> = client
        .query(&format!("SELECT DISTINCT toUInt32(period_start) FROM {table} WHERE period_end > toDateTime(?)"))
        .bind(now)
        .fetch_all::<u32>()
        .await
        .map_err(|source| SaltError::ClickHouse { what: "reading salt periods", source })?
        .into_iter()
        .collect();
    let current = period_start(now, period_s);
    let mut created = Vec::new();
    for start in [current, current + period_s] {
        if existing.contains(&start) {
            continue;
        }
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt).map_err(SaltError::Random)?;
        let row = SaltRow { period_start: start, period_end: start + period_s, salt, created_at: now };
        let result = async {
            let mut insert = client.insert_unescaped::<SaltRow>(&table).await?;
            insert.write(&row).await?;
            insert.end().await
        }
        .await;
        result.map_err(|source| SaltError::ClickHouse { what: "inserting a salt", source })?;
        tracing::info!(period_start = start, period_end = start + period_s, "salt created");
        created.push(start);
    }
    Ok(created)
}

#[derive(Debug, Row, Deserialize)]
struct Period {
    start: u32,
    end: u32,
    partition: u32,
}

/// Deletes the salts whose period ended more than `grace_s` ago, by dropping their partition
/// (one per start day; rotation periods are whole days, so a partition holds one period).
/// Returns the audit rows (already recorded). Once gone, nobody can recompute the visitor ids
/// of those periods.
pub async fn expire(
    client: &Client,
    partitions: &Partitions,
    databases: &Databases,
    grace_s: u32,
    now: u32,
) -> Result<Vec<AuditRow>, SaltError> {
    let table = databases.salts();
    let periods = client
        .query(&format!(
            "SELECT toUInt32(period_start) AS start, toUInt32(period_end) AS end, toYYYYMMDD(period_start) AS partition \
             FROM {table} ORDER BY start"
        ))
        .fetch_all::<Period>()
        .await
        .map_err(|source| SaltError::ClickHouse { what: "reading salt periods", source })?;
    let expired = |p: &Period| u64::from(p.end) + u64::from(grace_s) <= u64::from(now);
    let mut expired_partitions: Vec<u32> = periods.iter().filter(|p| expired(p)).map(|p| p.partition).collect();
    expired_partitions.dedup();
    let mut deleted = Vec::new();
    for partition in expired_partitions {
        let in_partition: Vec<&Period> = periods.iter().filter(|p| p.partition == partition).collect();
        if !in_partition.iter().all(|p| expired(p)) {
            tracing::warn!(partition, "a salt partition holds periods not yet expired; not dropped");
            continue;
        }
        partitions
            .drop_partition(&table, &partition.to_string())
            .await
            .map_err(|source| SaltError::ClickHouse { what: "dropping an expired salt", source })?;
        let rows: Vec<AuditRow> = in_partition
            .iter()
            .map(|p| {
                tracing::info!(period_start = p.start, period_end = p.end, "expired salt deleted");
                audit::deletion(
                    now,
                    "salt_delete",
                    format!("{table} period {}..{}", p.start, p.end),
                    1,
                    format!("period ended more than {grace_s} s ago"),
                )
            })
            .collect();
        audit::record(client, databases, &rows)
            .await
            .map_err(|source| SaltError::ClickHouse { what: "recording salt deletions", source })?;
        deleted.extend(rows);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_multiples_of_their_length() {
        assert_eq!(period_start(1_764_000_000, 86_400), 1_763_942_400);
        assert_eq!(period_start(1_763_942_400, 86_400), 1_763_942_400);
        assert_eq!(period_start(7_199, 3_600), 3_600);
    }
}
