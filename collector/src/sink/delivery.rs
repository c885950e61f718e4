//! Getting batches into ClickHouse: one insert attempt, else the spool; the shippers' replay
//! of sealed segments, oldest first, with backoff and jitter, each segment without the rows of
//! erased or blocked people (`filter`); dead letters for batches refused for their data.

use std::{
    hash::{BuildHasher, RandomState},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use clickhouse::error::Error as ChError;
use tokio::sync::Semaphore;

use super::{
    batch::{Batch, Table},
    filter::{Filtered, ReadReplayFilter},
    insert::{InsertError, Inserter},
    spool::{Segment, Spool},
};
use crate::{
    config::SinkConfig,
    metrics::{Metrics, RowOutcome, SpoolRowOutcome},
};

/// Inserting, spilling, replaying: shared by the batcher's deliveries and the shippers.
pub(super) struct Delivery {
    pub(super) inserter: Inserter,
    pub(super) spool: Arc<Spool>,
    /// Batches in memory beyond the buffers (`buffered` mode).
    pub(super) semaphore: Arc<Semaphore>,
    /// Who must not be replayed, read fresh before each insert of a spool segment.
    pub(super) replay_filter: ReadReplayFilter,
    pub(super) config: SinkConfig,
    pub(super) metrics: Arc<Metrics>,
}

impl Delivery {
    /// Hands a batch to a delivery task; waits for a free slot first, which is how
    /// backpressure reaches the queue.
    pub(super) async fn dispatch(self: &Arc<Self>, batch: Batch) {
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
                match self.inserter.insert(&mut batch).await {
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
    ///
    /// Before each insert attempt the blocklist and the erasures are read again from
    /// ClickHouse, and the rows of erased or blocked people are left out (docs/privacy-model.md
    /// section 6): the control data of `ingest` may lag `salts.refresh_interval_s` behind a
    /// request, and a replay happens only when ClickHouse answers anyway. When they cannot be
    /// read, the segment waits like a failed insert.
    pub(super) async fn ship(self: Arc<Self>, table: Table) {
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
            let mut replay = match read {
                Ok(replay) => replay,
                Err(error) => {
                    tracing::error!(%error, "cannot read a spool segment; moving it to the dead letters");
                    self.blocking(move |s| s.dead_letter_segment(&segment, 0, &format!("unreadable: {error}"))).await;
                    continue;
                }
            };
            if replay.batch.split().is_none() {
                tracing::warn!(
                    table = table.label(),
                    rows = replay.batch.rows,
                    "a spool segment of the first format holds rows that do not decode as today's rows; \
                     it is replayed as it is, without leaving out erased or blocked people"
                );
            }
            let mut backoff = self.backoff();
            loop {
                if replay.batch.is_empty() {
                    self.replayed(&segment, Filtered::default(), 0).await;
                    break;
                }
                let mut filtered = match (self.replay_filter)().await {
                    Ok(filter) => filter.apply(&replay.batch),
                    Err(error) => {
                        tracing::warn!(
                            table = table.label(),
                            %error,
                            "cannot read the blocklist and erasures; the spool is replayed once they can be read"
                        );
                        tokio::time::sleep(with_jitter(backoff.next())).await;
                        continue;
                    }
                };
                // The segment's rows stay as read, for the next attempt's filter: an insert
                // hands a batch's bytes back whatever its outcome, so nothing is copied.
                let mut kept = filtered.kept.take();
                let batch = kept.as_mut().unwrap_or(&mut replay.batch);
                if batch.is_empty() {
                    self.replayed(&segment, filtered, 0).await;
                    break;
                }
                match self.inserter.insert(batch).await {
                    Ok(()) => {
                        let rows = batch.rows;
                        self.replayed(&segment, filtered, rows).await;
                        break;
                    }
                    Err(InsertError::Permanent(error)) => {
                        // The segment as it is on disk: a replay after the fix filters it again.
                        let (segment, reason, rows) = (segment.clone(), error.to_string(), replay.batch.rows);
                        self.blocking(move |s| s.dead_letter_segment(&segment, rows, &reason)).await;
                        break;
                    }
                    Err(InsertError::Transient) => tokio::time::sleep(with_jitter(backoff.next())).await,
                }
            }
        }
    }

    /// Deletes a segment whose rows are in ClickHouse (`inserted`) or were left out, and
    /// counts both.
    async fn replayed(&self, segment: &Segment, filtered: Filtered, inserted: u32) {
        let table = segment.table.label();
        if filtered.blocked + filtered.erased > 0 {
            // Counts only: never a pseudonym.
            tracing::info!(
                table,
                blocked = filtered.blocked,
                erased = filtered.erased,
                "rows of blocked or erased people left out of a spool replay"
            );
            let count = |outcome: SpoolRowOutcome, rows: u32| {
                self.metrics.spool_rows.with_label_values(&[table, outcome.label()]).inc_by(u64::from(rows));
            };
            count(SpoolRowOutcome::Blocked, filtered.blocked);
            count(SpoolRowOutcome::Erased, filtered.erased);
        }
        let segment = segment.clone();
        self.blocking(move |s| s.remove(&segment, inserted)).await;
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
            self.metrics
                .sink_rows
                .with_label_values(&[table.label(), RowOutcome::Discarded.label()])
                .inc_by(u64::from(rows));
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            next: self.config.retry_initial_backoff_ms.duration(),
            max: self.config.retry_max_backoff_ms.duration(),
        }
    }

    pub(super) async fn wait_idle(&self) {
        let all = u32::try_from(self.config.max_inflight_batches.get()).unwrap_or(u32::MAX);
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

/// Backoff times a random factor in [0.5, 1.0), so that collectors do not retry in step.
fn with_jitter(backoff: Duration) -> Duration {
    let random = RandomState::new().hash_one(Instant::now());
    backoff.mul_f64(0.5 + (random % 1000) as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
