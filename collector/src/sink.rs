//! The sink, as a chain. Handlers `submit` encoded beacons; what happens next depends on the
//! durability mode (RELIABILITY.md):
//!
//! - `buffered`: a bounded queue → one batcher appends rows to a buffer per table → a full or
//!   due buffer becomes a [`Batch`] → one insert attempt → on a transient error the batch is
//!   spilled to the [`Spool`] → the shipper replays it when ClickHouse is back.
//! - `fsync`: a bounded queue → one committer thread appends each group of beacons to the
//!   spool's write-ahead log and fsyncs before their handlers answer → sealed segments are
//!   inserted by the shipper.
//!
//! Either way the shipper (one task per table) owns every retry: it inserts sealed segments
//! oldest first, with exponential backoff and jitter, and deletes a segment only after
//! ClickHouse acknowledged it. A batch refused for its data goes to the dead letters and the
//! rest keeps flowing. Memory is bounded by the queue, one buffer per table and
//! `max_inflight_batches`; disk by `[spool] max_bytes`. When both are full, handlers answer
//! 503. Which errors are permanent is decided in one place, [`is_permanent`].

use std::{
    hash::{BuildHasher, RandomState},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc as std_mpsc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use clickhouse::{Client, error::Error as ChError};
use store::Databases;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use crate::{
    batch::{Batch, EncodedBeacon, Table},
    config::{Durability, SinkConfig, SpoolConfig},
    metrics::Metrics,
    spool::{Spool, SpoolError, Wal},
};

/// Why a beacon was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the sink's queue is full")]
    QueueFull,
    #[error("the spool is full")]
    SpoolFull,
    #[error("the spool cannot be written")]
    SpoolFailed,
    #[error("the sink is shutting down")]
    Closed,
}

impl From<&SpoolError> for SubmitError {
    fn from(error: &SpoolError) -> Self {
        match error {
            SpoolError::Full => SubmitError::SpoolFull,
            SpoolError::Io(_) => SubmitError::SpoolFailed,
        }
    }
}

/// The handlers' end of the sink.
#[derive(Clone)]
pub struct SinkHandle {
    intake: Intake,
    spool: Arc<Spool>,
    metrics: Arc<Metrics>,
}

#[derive(Clone)]
enum Intake {
    Buffered(mpsc::Sender<EncodedBeacon>),
    Fsync { tx: std_mpsc::SyncSender<Commit>, closed: Arc<AtomicBool> },
}

/// A beacon for the committer, and where to say that it is on disk.
struct Commit {
    beacon: EncodedBeacon,
    done: oneshot::Sender<Result<(), SubmitError>>,
}

impl SinkHandle {
    /// Takes a beacon. In `buffered` mode this never waits; in `fsync` mode it returns once the
    /// beacon is fsynced in the spool.
    pub async fn submit(&self, beacon: EncodedBeacon) -> Result<(), SubmitError> {
        match &self.intake {
            Intake::Buffered(tx) => {
                tx.try_send(beacon).map_err(|error| match error {
                    mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
                    mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
                })?;
                self.metrics.sink_queue_beacons.inc();
                Ok(())
            }
            Intake::Fsync { tx, closed } => {
                if closed.load(Ordering::SeqCst) {
                    return Err(SubmitError::Closed);
                }
                let (done, committed) = oneshot::channel();
                tx.try_send(Commit { beacon, done }).map_err(|error| match error {
                    std_mpsc::TrySendError::Full(_) => SubmitError::QueueFull,
                    std_mpsc::TrySendError::Disconnected(_) => SubmitError::Closed,
                })?;
                self.metrics.sink_queue_beacons.inc();
                // A dropped sender means the committer stopped before this beacon was written.
                committed.await.unwrap_or(Err(SubmitError::Closed))
            }
        }
    }

    /// Why a beacon would be refused now, if it would be.
    pub fn refuses_work(&self) -> Option<SubmitError> {
        match &self.intake {
            Intake::Buffered(tx) if tx.is_closed() => Some(SubmitError::Closed),
            Intake::Buffered(tx) if tx.capacity() == 0 => Some(SubmitError::QueueFull),
            Intake::Buffered(_) => None,
            Intake::Fsync { closed, .. } if closed.load(Ordering::SeqCst) => Some(SubmitError::Closed),
            Intake::Fsync { .. } => self.spool.would_refuse(1).then_some(SubmitError::SpoolFull),
        }
    }
}

/// The running sink, for shutting it down.
pub struct Sink {
    stop: Arc<Notify>,
    intake: tokio::task::JoinHandle<()>,
    shippers: Vec<tokio::task::JoinHandle<()>>,
    delivery: Arc<Delivery>,
}

/// What shutdown left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Rows neither inserted nor spooled when the deadline passed: lost.
    pub rows_lost: i64,
    /// Bytes left in the spool, replayed at the next start.
    pub spool_bytes: u64,
}

impl Sink {
    /// Starts the intake for the configured durability and one shipper per table, which
    /// begins by replaying what the spool already holds.
    pub fn spawn(
        client: Client,
        databases: &Databases,
        config: SinkConfig,
        spool_config: &SpoolConfig,
        spool: Arc<Spool>,
        insert_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> (SinkHandle, Sink) {
        let delivery = Arc::new(Delivery {
            inserter: Inserter {
                client,
                // The ingest role inserts into Null tables whose views route rows to the stores.
                tables: [databases.ingest_audience(), databases.ingest_troubleshooting()],
                timeout: insert_timeout,
                send_token: AtomicBool::new(true),
                healthy: AtomicBool::new(true),
                metrics: metrics.clone(),
            },
            spool: spool.clone(),
            semaphore: Arc::new(Semaphore::new(config.max_inflight_batches)),
            config: config.clone(),
            metrics: metrics.clone(),
        });
        let stop = Arc::new(Notify::new());
        metrics.sink_queue_capacity_beacons.set(i64::try_from(config.queue_capacity).unwrap_or(i64::MAX));
        let (intake, task) = match config.durability {
            Durability::Buffered => {
                let (tx, rx) = mpsc::channel(config.queue_capacity);
                let batcher = Batcher { buffers: Table::ALL.map(Buffer::new), delivery: delivery.clone() };
                (Intake::Buffered(tx), tokio::spawn(batcher.run(rx, stop.clone())))
            }
            Durability::Fsync => {
                let (tx, rx) = std_mpsc::sync_channel(config.queue_capacity);
                let closed = Arc::new(AtomicBool::new(false));
                let wal = Wal::new(
                    spool.clone(),
                    spool_config.segment_bytes,
                    Duration::from_millis(config.flush_interval_ms),
                );
                let committer = Committer { rx, wal, closed: closed.clone(), metrics: metrics.clone() };
                let tick = Duration::from_millis(config.flush_interval_ms / 4)
                    .clamp(Duration::from_millis(5), Duration::from_millis(100));
                let thread = tokio::task::spawn_blocking(move || committer.run(tick));
                let stop_signal = stop.clone();
                let closer = closed.clone();
                let task = tokio::spawn(async move {
                    stop_signal.notified().await;
                    closer.store(true, Ordering::SeqCst);
                    if let Err(error) = thread.await {
                        tracing::error!(%error, "the spool committer failed");
                    }
                });
                (Intake::Fsync { tx, closed }, task)
            }
        };
        let shippers = Table::ALL.into_iter().map(|table| tokio::spawn(delivery.clone().ship(table))).collect();
        let handle = SinkHandle { intake, spool: spool.clone(), metrics: metrics.clone() };
        (handle, Sink { stop, intake: task, shippers, delivery })
    }

    /// Stops taking beacons; inserts or spools everything in memory; then replays the spool
    /// until `deadline`. Whatever is still spooled then waits for the next start.
    pub async fn shutdown(self, deadline: Duration) -> ShutdownReport {
        let until = tokio::time::Instant::now() + deadline;
        self.stop.notify_one();
        if tokio::time::timeout_at(until, self.intake).await.is_err() {
            tracing::error!("the deadline passed before the sink had inserted or spooled everything");
        }
        // Replaying is worth waiting for only while ClickHouse takes inserts.
        let Delivery { spool, inserter, metrics, .. } = &*self.delivery;
        while !spool.is_empty() && inserter.healthy.load(Ordering::Relaxed) && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shippers.iter().for_each(|shipper| shipper.abort());
        ShutdownReport { rows_lost: metrics.sink_pending_rows.get(), spool_bytes: spool.bytes() }
    }
}

/// `buffered` mode: batches rows in memory.
struct Batcher {
    buffers: [Buffer; 2],
    delivery: Arc<Delivery>,
}

struct Buffer {
    batch: Batch,
    since: Option<Instant>,
}

impl Buffer {
    fn new(table: Table) -> Self {
        Self { batch: Batch::new(table), since: None }
    }

    fn take(&mut self) -> Batch {
        self.since = None;
        let table = self.batch.table;
        std::mem::replace(&mut self.batch, Batch::new(table))
    }
}

impl Batcher {
    async fn run(mut self, mut rx: mpsc::Receiver<EncodedBeacon>, stop: Arc<Notify>) {
        let interval = Duration::from_millis(self.delivery.config.flush_interval_ms);
        let mut tick = tokio::time::interval((interval / 4).max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(beacon) => {
                        self.delivery.metrics.sink_queue_beacons.dec();
                        self.push(&beacon).await;
                    }
                    None => break,
                },
                _ = tick.tick() => self.flush(|since| since.elapsed() >= interval).await,
                _ = stop.notified(), if !stopping => {
                    // Refuse new beacons but drain what is queued.
                    stopping = true;
                    rx.close();
                }
            }
        }
        self.flush(|_| true).await;
        self.delivery.wait_idle().await;
    }

    async fn push(&mut self, beacon: &EncodedBeacon) {
        let config = &self.delivery.config;
        self.delivery.metrics.sink_pending_rows.add(i64::from(beacon.rows()));
        for table in Table::ALL {
            let Some(row) = beacon.row(table) else { continue };
            let buffer = &mut self.buffers[table.index()];
            buffer.batch.push(row);
            buffer.since.get_or_insert_with(Instant::now);
            if buffer.batch.rows as usize >= config.max_batch_rows || buffer.batch.bytes.len() >= config.max_batch_bytes
            {
                self.delivery.dispatch(buffer.take()).await;
            }
        }
    }

    async fn flush(&mut self, due: impl Fn(Instant) -> bool) {
        for buffer in &mut self.buffers {
            if buffer.since.is_some_and(&due) {
                self.delivery.dispatch(buffer.take()).await;
            }
        }
    }
}

/// `fsync` mode: group commit into the write-ahead log, on its own thread.
struct Committer {
    rx: std_mpsc::Receiver<Commit>,
    wal: Wal,
    closed: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

/// Most beacons in one group commit.
const MAX_GROUP: usize = 4096;

impl Committer {
    fn run(mut self, tick: Duration) {
        loop {
            match self.rx.recv_timeout(tick) {
                Ok(first) => self.commit_group(first),
                Err(std_mpsc::RecvTimeoutError::Timeout) if self.closed.load(Ordering::SeqCst) => break,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.wal.seal_due();
        }
        self.wal.seal_all();
    }

    /// While one group is being fsynced the next one queues up: that is the group commit.
    fn commit_group(&mut self, first: Commit) {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match self.rx.try_recv() {
                Ok(commit) => group.push(commit),
                Err(_) => break,
            }
        }
        self.metrics.sink_queue_beacons.sub(group.len() as i64);
        let mut staged = Vec::with_capacity(group.len());
        for Commit { beacon, done } in group {
            match self.wal.stage(&beacon) {
                Ok(()) => staged.push(done),
                Err(error) => {
                    let _ = done.send(Err(SubmitError::from(&error)));
                }
            }
        }
        let result = self.wal.commit().map_err(|error| {
            tracing::error!(%error, "cannot write the spool; refusing beacons");
            SubmitError::from(&error)
        });
        for done in staged {
            let _ = done.send(result);
        }
    }
}

/// Inserting, spilling, replaying: shared by the batcher's deliveries and the shippers.
struct Delivery {
    inserter: Inserter,
    spool: Arc<Spool>,
    /// Batches in memory beyond the buffers (`buffered` mode).
    semaphore: Arc<Semaphore>,
    config: SinkConfig,
    metrics: Arc<Metrics>,
}

impl Delivery {
    /// Hands a batch to a delivery task; waits for a free slot first, which is how
    /// backpressure reaches the queue.
    async fn dispatch(self: &Arc<Self>, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let permit = self.semaphore.clone().acquire_owned().await.expect("the semaphore is never closed");
        self.metrics.sink_inflight_batches.inc();
        let this = self.clone();
        tokio::spawn(async move {
            let rows = i64::from(batch.rows);
            this.deliver(batch).await;
            this.metrics.sink_pending_rows.sub(rows);
            this.metrics.sink_inflight_batches.dec();
            drop(permit);
        });
    }

    /// Inserts a batch, or spills it to the spool if ClickHouse is unavailable; while the
    /// spool is full too, keeps trying both with backoff (holding its slot, so the queue
    /// fills and handlers answer 503).
    async fn deliver(&self, mut batch: Batch) {
        let mut backoff = self.backoff();
        // While the shipper is still replaying, ClickHouse is probably down: spill at once.
        let mut try_insert = self.inserter.healthy.load(Ordering::Relaxed) || self.spool.is_empty();
        loop {
            if try_insert {
                match self.inserter.insert(&batch).await {
                    Ok(()) => return,
                    Err(InsertError::Permanent(error)) => return self.dead_letter(batch, &error).await,
                    Err(InsertError::Transient) => {}
                }
            }
            let spool = self.spool.clone();
            let (returned, written) = tokio::task::spawn_blocking(move || {
                let written = spool.write_batch(&batch);
                (batch, written)
            })
            .await
            .expect("spool writes do not panic");
            batch = returned;
            match written {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(table = batch.table.label(), rows = batch.rows, %error, "cannot spool a batch; it waits in memory");
                }
            }
            tokio::time::sleep(with_jitter(backoff.next())).await;
            try_insert = true;
        }
    }

    /// One table's replay loop: the oldest sealed segment first; deleted once inserted.
    async fn ship(self: Arc<Self>, table: Table) {
        loop {
            let Some(segment) = self.spool.oldest(table) else {
                self.spool.sealed(table).await;
                continue;
            };
            let spool = self.spool.clone();
            let read = {
                let segment = segment.clone();
                tokio::task::spawn_blocking(move || spool.read(&segment)).await.expect("spool reads do not panic")
            };
            let replay = match read {
                Ok(replay) => replay,
                Err(error) => {
                    tracing::error!(%error, "cannot read a spool segment; moving it to the dead letters");
                    self.blocking(move |s| s.dead_letter_segment(&segment, 0, &format!("unreadable: {error}"))).await;
                    continue;
                }
            };
            let rows = replay.batch.rows;
            let mut backoff = self.backoff();
            loop {
                if replay.batch.is_empty() {
                    let segment = segment.clone();
                    self.blocking(move |s| s.remove(&segment, 0)).await;
                    break;
                }
                match self.inserter.insert(&replay.batch).await {
                    Ok(()) => {
                        let segment = segment.clone();
                        self.blocking(move |s| s.remove(&segment, rows)).await;
                        break;
                    }
                    Err(InsertError::Permanent(error)) => {
                        let (segment, reason) = (segment.clone(), error.to_string());
                        self.blocking(move |s| s.dead_letter_segment(&segment, rows, &reason)).await;
                        break;
                    }
                    Err(InsertError::Transient) => tokio::time::sleep(with_jitter(backoff.next())).await,
                }
            }
        }
    }

    /// Runs a spool operation off the async threads; logs its failure.
    async fn blocking(&self, operation: impl FnOnce(&Spool) -> std::io::Result<()> + Send + 'static) {
        let spool = self.spool.clone();
        let result =
            tokio::task::spawn_blocking(move || operation(&spool)).await.expect("spool operations do not panic");
        if let Err(error) = result {
            tracing::error!(%error, "spool operation failed");
        }
    }

    async fn dead_letter(&self, batch: Batch, error: &ChError) {
        let (table, rows, reason) = (batch.table, batch.rows, error.to_string());
        let spool = self.spool.clone();
        let kept = tokio::task::spawn_blocking(move || spool.dead_letter_batch(&batch, &reason))
            .await
            .expect("spool writes do not panic");
        if !matches!(kept, Ok(true)) {
            tracing::error!(
                table = table.label(),
                rows,
                ?kept,
                "cannot keep a refused batch as a dead letter; discarded"
            );
            self.metrics.sink_rows.with_label_values(&[table.label(), "discarded"]).inc_by(u64::from(rows));
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            next: Duration::from_millis(self.config.retry_initial_backoff_ms),
            max: Duration::from_millis(self.config.retry_max_backoff_ms),
        }
    }

    async fn wait_idle(&self) {
        let all = u32::try_from(self.config.max_inflight_batches).unwrap_or(u32::MAX);
        let _ = self.semaphore.acquire_many(all).await;
    }
}

struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let current = self.next;
        self.next = (self.next * 2).min(self.max);
        current
    }
}

enum InsertError {
    /// Refused for its data: retrying cannot help.
    Permanent(ChError),
    Transient,
}

struct Inserter {
    client: Client,
    /// `<prefix>_ingest.<table>`, by [`Table::index`].
    tables: [String; 2],
    timeout: Duration,
    /// Cleared when the server does not know `insert_deduplication_token` (before 22.2).
    send_token: AtomicBool,
    /// Whether the last insert succeeded.
    healthy: AtomicBool,
    metrics: Arc<Metrics>,
}

/// ClickHouse's UNKNOWN_SETTING.
const UNKNOWN_SETTING: u32 = 115;

impl Inserter {
    /// One insert (plus one more if the server turns out not to know the token setting).
    async fn insert(&self, batch: &Batch) -> Result<(), InsertError> {
        let label = batch.table.label();
        loop {
            let token = self.send_token.load(Ordering::Relaxed).then(|| batch.token());
            let started = Instant::now();
            let result = self.insert_once(batch, token.as_deref()).await;
            self.metrics.sink_insert_duration.with_label_values(&[label]).observe(started.elapsed().as_secs_f64());
            let error = match result {
                Ok(()) => {
                    self.healthy.store(true, Ordering::Relaxed);
                    self.metrics.sink_inserts.with_label_values(&[label, "ok"]).inc();
                    self.metrics.sink_rows.with_label_values(&[label, "inserted"]).inc_by(u64::from(batch.rows));
                    tracing::debug!(table = label, rows = batch.rows, "batch inserted");
                    return Ok(());
                }
                Err(error) => error,
            };
            if token.is_some() && error_code(&error) == Some(UNKNOWN_SETTING) {
                self.send_token.store(false, Ordering::Relaxed);
                tracing::info!(
                    "this ClickHouse has no insert_deduplication_token (before 22.2): a replayed batch may be counted twice"
                );
                continue;
            }
            if is_permanent(&error) {
                self.metrics.sink_inserts.with_label_values(&[label, "permanent_error"]).inc();
                tracing::error!(table = label, rows = batch.rows, %error, "ClickHouse refused a batch for its data; it goes to the dead letters");
                return Err(InsertError::Permanent(error));
            }
            self.healthy.store(false, Ordering::Relaxed);
            self.metrics.sink_inserts.with_label_values(&[label, "transient_error"]).inc();
            tracing::warn!(table = label, rows = batch.rows, %error, "insert failed; the batch will be retried from the spool");
            return Err(InsertError::Transient);
        }
    }

    async fn insert_once(&self, batch: &Batch, token: Option<&str>) -> Result<(), ChError> {
        let table = &self.tables[batch.table.index()];
        let mut insert = self
            .client
            .insert_formatted_with(format!("INSERT INTO {table} FORMAT RowBinary"))
            .with_timeouts(Some(self.timeout), Some(self.timeout));
        if let Some(token) = token {
            insert = insert.with_setting("insert_deduplication_token", token);
        }
        insert.send(Bytes::copy_from_slice(&batch.bytes)).await?;
        insert.end().await
    }
}

/// The one decision about ClickHouse errors: a batch refused for its data will be refused
/// again, so retrying it would block the rows behind it; everything else (network, timeouts,
/// overload, missing tables during a migration, authentication) may heal and is retried.
pub fn is_permanent(error: &ChError) -> bool {
    // Codes of ClickHouse's ErrorCodes.cpp meaning "this data cannot be inserted".
    const DATA_ERRORS: [u32; 14] = [6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 349];
    match error {
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
        assert_eq!(error_code(&bad("Code: 115, e.displayText() = DB::Exception: Unknown setting x")), Some(115));
    }

    #[test]
    fn jitter_stays_within_half_to_full_backoff() {
        for _ in 0..100 {
            let d = with_jitter(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(500) && d < Duration::from_millis(1000), "{d:?}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_limit() {
        let mut b = Backoff { next: Duration::from_millis(100), max: Duration::from_millis(300) };
        let delays: Vec<_> = (0..4).map(|_| b.next().as_millis()).collect();
        assert_eq!(delays, [100, 200, 300, 300]);
    }
}
