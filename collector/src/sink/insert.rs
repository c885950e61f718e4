//! One insert of a batch's RowBinary bytes, and the one decision of what a failure means:
//! [`is_permanent`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use clickhouse::{Client, error::Error as ChError};
use store::Databases;

use super::batch::{Batch, Table};
use crate::metrics::{InsertOutcome, Metrics, RowOutcome};

pub(super) enum InsertError {
    /// Refused for its data: retrying cannot help.
    Permanent(ChError),
    Transient,
}

pub(super) struct Inserter {
    client: Client,
    /// `INSERT INTO <prefix>_ingest.<table> (<columns>) FORMAT RowBinary`, by
    /// [`Table::index`]. Naming the columns lets a column be appended to
    /// a table before every collector encodes it (docs/operations.md, upgrades).
    statements: [String; 2],
    timeout: Duration,
    /// Cleared when the server does not know `insert_deduplication_token` (before 22.2).
    send_token: AtomicBool,
    /// Whether the last insert succeeded.
    pub(super) healthy: AtomicBool,
    metrics: Arc<Metrics>,
}

/// Bytes of a batch compressed and sent at a time: a fraction of a millisecond of LZ4, and
/// the client's own buffer size.
const SEND_SLICE_BYTES: usize = 256 * 1024;

/// ClickHouse's UNKNOWN_SETTING.
const UNKNOWN_SETTING: u32 = 115;

impl Inserter {
    /// Inserts into the ingest tables of `databases` (the ingest role may insert there only;
    /// their views route the rows to the stores).
    pub(super) fn new(client: Client, databases: &Databases, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            statements: Table::ALL.map(|table| {
                let name = match table {
                    Table::Audience => databases.ingest_audience(),
                    Table::Troubleshooting => databases.ingest_troubleshooting(),
                };
                format!("INSERT INTO {name} ({}) FORMAT RowBinary", table.columns().join(", "))
            }),
            timeout,
            send_token: AtomicBool::new(true),
            healthy: AtomicBool::new(true),
            metrics,
        }
    }

    /// One insert (plus one more if the server turns out not to know the token setting). The
    /// batch's bytes are lent to the client without a copy and are back in `batch` when this
    /// returns, for the spool or the dead letters.
    pub(super) async fn insert(&self, batch: &mut Batch) -> Result<(), InsertError> {
        let label = batch.table.label();
        // Hashed only for a server that takes the token (none before 22.2).
        let mut token = self.send_token.load(Ordering::Relaxed).then(|| batch.token());
        loop {
            let started = Instant::now();
            let bytes = Bytes::from(std::mem::take(&mut batch.bytes));
            let result = self.insert_once(batch.table, bytes.clone(), token.as_deref()).await;
            // The client has dropped its handle by now: no copy unless it has not.
            batch.bytes = Vec::from(bytes);
            self.metrics.sink_insert_duration.with_label_values(&[label]).observe(started.elapsed().as_secs_f64());
            let error = match result {
                Ok(()) => {
                    self.healthy.store(true, Ordering::Relaxed);
                    self.metrics.sink_inserts.with_label_values(&[label, InsertOutcome::Ok.label()]).inc();
                    self.metrics
                        .sink_rows
                        .with_label_values(&[label, RowOutcome::Inserted.label()])
                        .inc_by(u64::from(batch.rows));
                    tracing::debug!(table = label, rows = batch.rows, "batch inserted");
                    return Ok(());
                }
                Err(error) => error,
            };
            if token.is_some() && error_code(&error) == Some(UNKNOWN_SETTING) {
                token = None;
                self.send_token.store(false, Ordering::Relaxed);
                tracing::info!(
                    "this ClickHouse has no insert_deduplication_token (before 22.2): a replayed batch may be counted twice"
                );
                continue;
            }
            if is_permanent(&error) {
                self.metrics.sink_inserts.with_label_values(&[label, InsertOutcome::PermanentError.label()]).inc();
                tracing::error!(table = label, rows = batch.rows, %error, "ClickHouse refused a batch for its data; it goes to the dead letters");
                return Err(InsertError::Permanent(error));
            }
            self.healthy.store(false, Ordering::Relaxed);
            self.metrics.sink_inserts.with_label_values(&[label, InsertOutcome::TransientError.label()]).inc();
            tracing::warn!(table = label, rows = batch.rows, %error, "insert failed; the batch will be retried from the spool");
            return Err(InsertError::Transient);
        }
    }

    async fn insert_once(&self, table: Table, bytes: Bytes, token: Option<&str>) -> Result<(), ChError> {
        let mut insert = self
            .client
            .insert_formatted_with(self.statements[table.index()].as_str())
            .with_timeouts(Some(self.timeout), Some(self.timeout));
        if let Some(token) = token {
            insert = insert.with_setting("insert_deduplication_token", token);
        }
        // A slice at a time, yielding between: compressing a whole batch (up to
        // `max_batch_bytes`) in one go would hold this worker for milliseconds while the
        // requests queued behind it wait (benches/README.md, issue 14).
        for start in (0..bytes.len()).step_by(SEND_SLICE_BYTES) {
            insert.send(bytes.slice(start..bytes.len().min(start + SEND_SLICE_BYTES))).await?;
            tokio::task::yield_now().await;
        }
        insert.end().await
    }
}

/// The one decision about ClickHouse errors: a batch refused for its data will be refused
/// again, so retrying it would block the rows behind it; everything else (network, timeouts,
/// overload, missing tables during a migration, authentication, another node of a cluster
/// failing) may heal and is retried.
pub fn is_permanent(error: &ChError) -> bool {
    // Codes of ClickHouse's ErrorCodes.cpp meaning "this data cannot be inserted".
    const DATA_ERRORS: [u32; 14] = [6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 349];
    // How a Distributed insert reports a shard's replica that went away mid-insert (as code 32,
    // "Attempt to read after eof", on 18.16): the data was parsed on the node asked, so an
    // error while talking to another node is about that node, not about the data.
    const FROM_ANOTHER_NODE: &str = "while receiving packet from";
    match error {
        ChError::BadResponse(message) if message.contains(FROM_ANOTHER_NODE) => false,
        ChError::BadResponse(_) => error_code(error).is_some_and(|c| DATA_ERRORS.contains(&c)),
        ChError::DataFormat(_) | ChError::SequenceMustHaveLength | ChError::Custom(_) => true,
        _ => false,
    }
}

/// The `Code: N` of a ClickHouse exception.
fn error_code(error: &ChError) -> Option<u32> {
    let ChError::BadResponse(message) = error else { return None };
    let rest = &message[message.find("Code: ")? + 6..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_clickhouse_errors() {
        let bad = |m: &str| ChError::BadResponse(m.to_owned());
        assert!(is_permanent(&bad("Code: 27, e.displayText() = DB::Exception: Cannot parse input")));
        assert!(is_permanent(&bad("Code: 53. DB::Exception: Type mismatch")));
        assert!(!is_permanent(&bad("Code: 60, e.displayText() = DB::Exception: Table x doesn't exist.")));
        assert!(!is_permanent(&bad("Code: 241. DB::Exception: Memory limit exceeded")));
        assert!(!is_permanent(&bad("502 Bad Gateway")));
        // A shard's replica killed during a Distributed insert (ClickHouse 18.16's words).
        assert!(!is_permanent(&bad(
            "Code: 32, e.displayText() = DB::Exception: Attempt to read after eof: while receiving packet from \
             127.0.0.1:21929: Insertion status:\nWrote 1 blocks and 17 rows on shard 0 replica 0, 127.0.0.1:21923"
        )));
        assert!(is_permanent(&bad("Code: 32, e.displayText() = DB::Exception: Attempt to read after eof")));
        assert!(!is_permanent(&ChError::TimedOut));
        assert_eq!(error_code(&bad("Code: 115, e.displayText() = DB::Exception: Unknown setting x")), Some(115));
    }
}
