//! The sink, as a chain: handlers `try_submit` into a bounded queue → one batcher buffers rows
//! per table → a full or due buffer becomes a batch → the batch is inserted (RowBinary + LZ4
//! through the clickhouse crate) with retry and backoff → its rows are counted as inserted.
//!
//! Handlers never wait for ClickHouse and share no lock with the sink's I/O: the queue is
//! the only meeting point. Memory is bounded: at most `queue_capacity` beacons queued, one
//! buffer per table, and `max_inflight_batches` batches in flight; when those are all busy
//! the batcher stops taking from the queue, the queue fills, and handlers answer 503.
//!
//! Which errors are permanent is decided in one place, [`is_permanent`].

use std::{
    hash::{BuildHasher, RandomState},
    sync::Arc,
    time::{Duration, Instant},
};

use clickhouse::{Client, RowOwned, RowWrite, error::Error as ChError};
use store::{AudienceRow, Databases, TroubleshootingRow};
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::{config::SinkConfig, metrics::Metrics, pipeline::Pseudonymised};

/// The handlers' end of the queue.
#[derive(Clone)]
pub struct SinkHandle {
    tx: mpsc::Sender<Pseudonymised>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the sink's queue is full")]
    Full,
    #[error("the sink is shutting down")]
    Closed,
}

impl SinkHandle {
    /// Queues rows without waiting.
    pub fn try_submit(&self, rows: Pseudonymised) -> Result<(), SubmitError> {
        match self.tx.try_send(rows) {
            Ok(()) => {
                self.metrics.sink_queue_beacons.inc();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(SubmitError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Closed),
        }
    }

    /// Whether a beacon would be queued now: open and not full.
    pub fn accepts_work(&self) -> bool {
        !self.tx.is_closed() && self.tx.capacity() > 0
    }
}

/// The running sink, for shutting it down.
pub struct Sink {
    stop: Arc<Notify>,
    batcher: tokio::task::JoinHandle<()>,
    metrics: Arc<Metrics>,
}

/// What shutdown could not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Rows buffered or in flight when the deadline passed; beacons still queued are not
    /// counted here (they are in `sink_queue_beacons`).
    pub rows_not_inserted: i64,
}

impl Sink {
    /// `insert_timeout` bounds each of an insert's sends and its completion.
    pub fn spawn(
        client: Client,
        databases: &Databases,
        config: SinkConfig,
        insert_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> (SinkHandle, Sink) {
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let stop = Arc::new(Notify::new());
        let inserter = Arc::new(Inserter {
            client,
            semaphore: Arc::new(Semaphore::new(config.max_inflight_batches)),
            config: config.clone(),
            insert_timeout,
            metrics: metrics.clone(),
        });
        let batcher = Batcher {
            // The ingest role inserts into Null tables whose views route rows to the stores.
            audience: Buffer::new(databases.ingest_audience(), "audience"),
            troubleshooting: Buffer::new(databases.ingest_troubleshooting(), "troubleshooting"),
            inserter,
        };
        let task = tokio::spawn(batcher.run(rx, stop.clone()));
        (SinkHandle { tx, metrics: metrics.clone() }, Sink { stop, batcher: task, metrics })
    }

    /// Stops taking new rows, inserts everything buffered, and waits for in-flight batches
    /// until `deadline`. Rows still not inserted by then are reported (and lost until the
    /// disk spool exists).
    pub async fn shutdown(self, deadline: Duration) -> ShutdownReport {
        self.stop.notify_one();
        match tokio::time::timeout(deadline, self.batcher).await {
            Ok(Ok(())) => ShutdownReport { rows_not_inserted: 0 },
            Ok(Err(error)) => {
                tracing::error!(%error, "the batcher failed during shutdown");
                ShutdownReport { rows_not_inserted: self.metrics.sink_pending_rows.get() }
            }
            Err(_elapsed) => ShutdownReport { rows_not_inserted: self.metrics.sink_pending_rows.get() },
        }
    }
}

struct Batcher {
    audience: Buffer<AudienceRow>,
    troubleshooting: Buffer<TroubleshootingRow>,
    inserter: Arc<Inserter>,
}

impl Batcher {
    async fn run(mut self, mut rx: mpsc::Receiver<Pseudonymised>, stop: Arc<Notify>) {
        let interval = Duration::from_millis(self.inserter.config.flush_interval_ms);
        let mut tick = tokio::time::interval((interval / 4).max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(rows) => {
                        self.inserter.metrics.sink_queue_beacons.dec();
                        self.push(rows).await;
                    }
                    None => break,
                },
                _ = tick.tick() => self.flush_due(interval).await,
                _ = stop.notified(), if !stopping => {
                    // Refuse new beacons but drain what is queued.
                    stopping = true;
                    rx.close();
                }
            }
        }
        self.flush_due(Duration::ZERO).await;
        self.inserter.wait_idle().await;
    }

    async fn push(&mut self, rows: Pseudonymised) {
        let (audience, troubleshooting) = rows.into_parts();
        let config = &self.inserter.config;
        let rows = u8::from(audience.is_some()) + u8::from(troubleshooting.is_some());
        self.inserter.metrics.sink_pending_rows.add(i64::from(rows));
        if let Some(row) = audience
            && self.audience.push(row, config)
        {
            self.inserter.dispatch(&mut self.audience).await;
        }
        if let Some(row) = troubleshooting
            && self.troubleshooting.push(row, config)
        {
            self.inserter.dispatch(&mut self.troubleshooting).await;
        }
    }

    async fn flush_due(&mut self, age: Duration) {
        if self.audience.is_due(age) {
            self.inserter.dispatch(&mut self.audience).await;
        }
        if self.troubleshooting.is_due(age) {
            self.inserter.dispatch(&mut self.troubleshooting).await;
        }
    }
}

/// One table's rows waiting for an insert.
struct Buffer<R> {
    table: Arc<str>,
    label: &'static str,
    rows: Vec<R>,
    bytes: usize,
    since: Option<Instant>,
}

impl<R: SinkRow> Buffer<R> {
    fn new(table: String, label: &'static str) -> Self {
        Self { table: table.into(), label, rows: Vec::new(), bytes: 0, since: None }
    }

    /// Adds a row; true when the buffer is full and must be dispatched.
    fn push(&mut self, row: R, config: &SinkConfig) -> bool {
        self.bytes += row.approx_bytes();
        self.rows.push(row);
        self.since.get_or_insert_with(Instant::now);
        self.rows.len() >= config.max_batch_rows || self.bytes >= config.max_batch_bytes
    }

    fn is_due(&self, age: Duration) -> bool {
        self.since.is_some_and(|since| since.elapsed() >= age)
    }

    fn take(&mut self) -> Vec<R> {
        self.bytes = 0;
        self.since = None;
        std::mem::take(&mut self.rows)
    }
}

/// A row the sink can batch: RowBinary-serialisable, with a size estimate for batching.
trait SinkRow: RowOwned + RowWrite + Send + Sync {
    fn approx_bytes(&self) -> usize;
}

/// What a row costs in memory: the struct, its text, and about 16 bytes of allocator overhead
/// per heap allocation. An estimate, so that `max_batch_bytes` bounds real memory.
fn row_bytes<'a>(struct_size: usize, texts: impl IntoIterator<Item = &'a String>) -> usize {
    struct_size + texts.into_iter().map(|s| if s.is_empty() { 0 } else { s.len() + 16 }).sum::<usize>()
}

impl SinkRow for AudienceRow {
    fn approx_bytes(&self) -> usize {
        let r = self;
        row_bytes(
            std::mem::size_of::<Self>(),
            [
                &r.site,
                &r.host,
                &r.path,
                &r.query,
                &r.utm_source,
                &r.utm_medium,
                &r.utm_campaign,
                &r.utm_term,
                &r.utm_content,
                &r.ref_host,
                &r.ref_path,
                &r.name,
                &r.browser,
                &r.browser_version,
                &r.os,
                &r.os_version,
                &r.device,
                &r.country,
                &r.region,
                &r.city,
                &r.lang,
            ]
            .into_iter()
            .chain(&r.prop_keys)
            .chain(&r.prop_values),
        )
    }
}

impl SinkRow for TroubleshootingRow {
    fn approx_bytes(&self) -> usize {
        let r = self;
        row_bytes(
            std::mem::size_of::<Self>(),
            [
                &r.site,
                &r.network,
                &r.as_org,
                &r.country,
                &r.host,
                &r.path,
                &r.ref_host,
                &r.ref_path,
                &r.name,
                &r.user_agent,
                &r.browser,
                &r.browser_version,
                &r.os,
                &r.os_version,
                &r.device,
                &r.error_message,
                &r.error_source,
                &r.error_stack,
            ],
        )
    }
}

struct Inserter {
    client: Client,
    semaphore: Arc<Semaphore>,
    config: SinkConfig,
    insert_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Inserter {
    /// Hands a buffer's rows to an insert task; waits for a free slot first, which is how
    /// backpressure reaches the queue.
    async fn dispatch<R: SinkRow>(self: &Arc<Self>, buffer: &mut Buffer<R>) {
        if buffer.rows.is_empty() {
            return;
        }
        let permit = self.semaphore.clone().acquire_owned().await.expect("the semaphore is never closed");
        let rows = buffer.take();
        let (table, label) = (buffer.table.clone(), buffer.label);
        self.metrics.sink_inflight_batches.inc();
        let this = self.clone();
        tokio::spawn(async move {
            this.insert_with_retry(&table, label, &rows).await;
            this.metrics.sink_pending_rows.sub(rows.len() as i64);
            this.metrics.sink_inflight_batches.dec();
            drop(permit);
        });
    }

    async fn insert_with_retry<R: SinkRow>(&self, table: &str, label: &'static str, rows: &[R]) {
        let mut backoff = Duration::from_millis(self.config.retry_initial_backoff_ms);
        let max_backoff = Duration::from_millis(self.config.retry_max_backoff_ms);
        loop {
            let started = Instant::now();
            let result = self.insert_once(table, rows).await;
            self.metrics.sink_insert_duration.with_label_values(&[label]).observe(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    self.metrics.sink_inserts.with_label_values(&[label, "ok"]).inc();
                    self.metrics.sink_rows.with_label_values(&[label, "inserted"]).inc_by(rows.len() as u64);
                    tracing::debug!(table, rows = rows.len(), "batch inserted");
                    return;
                }
                Err(error) if is_permanent(&error) => {
                    self.metrics.sink_inserts.with_label_values(&[label, "permanent_error"]).inc();
                    self.metrics.sink_rows.with_label_values(&[label, "failed"]).inc_by(rows.len() as u64);
                    tracing::error!(table, rows = rows.len(), %error, "ClickHouse refused a batch for its data; the batch is dropped");
                    return;
                }
                Err(error) => {
                    self.metrics.sink_inserts.with_label_values(&[label, "transient_error"]).inc();
                    let delay = with_jitter(backoff);
                    tracing::warn!(table, rows = rows.len(), %error, retry_in_ms = delay.as_millis() as u64, "insert failed; retrying");
                    tokio::time::sleep(delay).await;
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
    }

    async fn insert_once<R: SinkRow>(&self, table: &str, rows: &[R]) -> Result<(), ChError> {
        let timeout = Some(self.insert_timeout);
        let mut insert = self.client.insert_unescaped::<R>(table).await?.with_timeouts(timeout, timeout);
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    }

    async fn wait_idle(&self) {
        let all = u32::try_from(self.config.max_inflight_batches).unwrap_or(u32::MAX);
        let _ = self.semaphore.acquire_many(all).await;
    }
}

/// The one decision about ClickHouse errors: a batch refused for its data will be refused
/// again, so retrying it would block the rows behind it; everything else (network, timeouts,
/// overload, missing tables during a migration, authentication) may heal and is retried.
pub fn is_permanent(error: &ChError) -> bool {
    // Codes of ClickHouse's ErrorCodes.cpp meaning "this data cannot be inserted".
    const DATA_ERRORS: [u32; 14] = [6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 349];
    match error {
        ChError::BadResponse(message) => exception_code(message).is_some_and(|c| DATA_ERRORS.contains(&c)),
        ChError::DataFormat(_) | ChError::SequenceMustHaveLength | ChError::Custom(_) => true,
        _ => false,
    }
}

/// The `Code: N` of a ClickHouse exception message.
fn exception_code(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code: ")? + 6..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Backoff times a random factor in [0.5, 1.0), so that collectors do not retry in step.
fn with_jitter(backoff: Duration) -> Duration {
    let random = RandomState::new().hash_one(Instant::now());
    backoff.mul_f64(0.5 + (random % 1000) as f64 / 2000.0)
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
        assert!(!is_permanent(&ChError::TimedOut));
    }

    #[test]
    fn jitter_stays_within_half_to_full_backoff() {
        for _ in 0..100 {
            let d = with_jitter(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(500) && d < Duration::from_millis(1000), "{d:?}");
        }
    }
}
