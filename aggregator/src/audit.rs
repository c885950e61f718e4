//! The audit trail: one row per deletion or data-subject request, written as RowBinary.

use clickhouse::Client;
use store::{AuditRow, Databases};

pub async fn record(client: &Client, databases: &Databases, rows: &[AuditRow]) -> Result<(), clickhouse::error::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert_unescaped::<AuditRow>(&databases.audit()).await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}

/// An audit row for a deletion that concerns no particular person.
pub fn deletion(ts: u32, action: &str, target: String, rows: u64, detail: String) -> AuditRow {
    AuditRow {
        ts,
        action: action.to_owned(),
        site: String::new(),
        target,
        subject_kind: String::new(),
        subject_id: 0,
        rows,
        detail,
    }
}
