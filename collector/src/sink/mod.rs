//! The sink, as a chain. Handlers `submit` encoded beacons; what happens next depends on the
//! durability mode (docs/reliability.md):
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
//! ClickHouse acknowledged it. Before each insert it reads the blocklist and the erasures again
//! and leaves out the rows of erased or blocked people ([`filter`]). A batch refused for its
//! data goes to the dead letters and the rest keeps flowing. Memory is bounded by the queue, one buffer per table and
//! `max_inflight_batches`; disk by `[spool] max_bytes`. When both are full, handlers answer
//! 503. Which errors are permanent is decided in one place, [`insert::is_permanent`].
//!
//! Modules: `batch` (rows as bytes), `delivery` (insert or spill, replay, dead letters),
//! `filter` (who must not be replayed), `insert` (one insert and the permanent/transient
//! decision), `spool` (segments on disk).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc as std_mpsc,
    },
    time::{Duration, Instant},
};

use clickhouse::Client;
use store::Databases;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

mod batch;
mod delivery;
mod filter;
mod insert;
mod spool;

use self::{
    batch::Batch,
    delivery::Delivery,
    insert::Inserter,
    spool::{SpoolError, Wal},
};
pub use self::{
    batch::{EncodedBeacon, Table},
    filter::{ReadReplayFilter, ReplayFilter},
    spool::Spool,
};
use crate::config::{Durability, SinkConfig, SpoolConfig};
use crate::metrics::Metrics;

/// Why a beacon was not taken (`refusal` words each for the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    QueueFull,
    SpoolFull,
    SpoolFailed,
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
    /// begins by replaying what the spool already holds, each segment filtered by what
    /// `replay_filter` reads just before.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        client: Client,
        databases: &Databases,
        config: SinkConfig,
        spool_config: &SpoolConfig,
        spool: Arc<Spool>,
        replay_filter: ReadReplayFilter,
        insert_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> (SinkHandle, Sink) {
        let delivery = Arc::new(Delivery {
            inserter: Inserter::new(client, databases, insert_timeout, metrics.clone()),
            spool: spool.clone(),
            semaphore: Arc::new(Semaphore::new(config.max_inflight_batches.get())),
            replay_filter,
            config: config.clone(),
            metrics: metrics.clone(),
        });
        let stop = Arc::new(Notify::new());
        metrics.sink_queue_capacity_beacons.set(i64::try_from(config.queue_capacity.get()).unwrap_or(i64::MAX));
        metrics.register_tables(Table::ALL.map(Table::label));
        let (intake, task) = match config.durability {
            Durability::Buffered => {
                let (tx, rx) = mpsc::channel(config.queue_capacity.get());
                let batcher = Batcher { buffers: Table::ALL.map(Buffer::new), delivery: delivery.clone() };
                (Intake::Buffered(tx), tokio::spawn(batcher.run(rx, stop.clone())))
            }
            Durability::Fsync => {
                let (tx, rx) = std_mpsc::sync_channel(config.queue_capacity.get());
                let closed = Arc::new(AtomicBool::new(false));
                let wal = Wal::new(spool.clone(), spool_config.segment_bytes, config.flush_interval_ms.duration());
                let committer = Committer { rx, wal, closed: closed.clone(), metrics: metrics.clone() };
                let tick = (config.flush_interval_ms.duration() / 4)
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

    /// The batch, replaced by an empty one sized like it: under a steady load the next batch
    /// is about as big, and growing it from nothing would copy it over and over.
    fn take(&mut self) -> Batch {
        self.since = None;
        let next = Batch::with_capacity(self.batch.table, self.batch.bytes.len());
        std::mem::replace(&mut self.batch, next)
    }
}

impl Batcher {
    async fn run(mut self, mut rx: mpsc::Receiver<EncodedBeacon>, stop: Arc<Notify>) {
        let interval = self.delivery.config.flush_interval_ms.duration();
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
            let Some(row) = table.row_of(beacon) else { continue };
            let buffer = &mut self.buffers[table.index()];
            // A row that would take the batch past its byte limit starts the next one: a batch
            // stays within the memory [sink] max_batch_bytes promises.
            if !buffer.batch.is_empty() && buffer.batch.bytes.len() + row.len() > config.max_batch_bytes {
                self.delivery.dispatch(buffer.take()).await;
            }
            buffer.batch.push(row);
            buffer.since.get_or_insert_with(Instant::now);
            if buffer.batch.rows as usize >= config.max_batch_rows.get()
                || buffer.batch.bytes.len() >= config.max_batch_bytes
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
        let started = Instant::now();
        let result = self.wal.commit().map_err(|error| {
            tracing::error!(%error, "cannot write the spool; refusing beacons");
            SubmitError::from(&error)
        });
        self.metrics.spool_commit_duration.observe(started.elapsed().as_secs_f64());
        self.metrics.spool_commit_beacons.observe(staged.len() as f64);
        for done in staged {
            let _ = done.send(result);
        }
    }
}
