//! `aggregator run`: the long-running service. Each pass creates the salts ahead of time,
//! deletes expired ones, enforces retention and refreshes the recent days' rollups; `--once`
//! runs a single pass. Between passes, the current visitors are recorded every
//! [`CURRENT_INTERVAL`], so the dashboards' figure is at most a minute old.

use std::{future::Future, time::Duration};

use clickhouse::Client;
use store::Databases;

use crate::{Config, partitions::Partitions, retention, rollups, salts};

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Salts(#[from] salts::SaltError),
    #[error("retention or rollups: ClickHouse refused: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Pass {
    pub salts_created: usize,
    pub salts_deleted: usize,
    pub partitions_dropped: usize,
    pub rollup_days: usize,
}

pub async fn pass(
    client: &Client,
    partitions: &Partitions,
    databases: &Databases,
    config: &Config,
    now: u32,
) -> Result<Pass, PassError> {
    let created = salts::ensure(client, databases, config.salts.rotation_period_s, now).await?;
    let deleted = salts::expire(client, partitions, databases, config.salts.grace_period_s, now).await?;
    let dropped = retention::enforce(client, partitions, databases, &config.retention, now).await?;
    let today = store::day_number(now);
    let days: Vec<u16> = (0..config.privacy.rollup_days).filter_map(|back| today.checked_sub(back)).collect();
    rollups::refresh(client, partitions, databases, &days, config.privacy.min_group_size).await?;
    rollups::record_current_visitors(client, databases, now, config.privacy.min_group_size).await?;
    Ok(Pass {
        salts_created: created.len(),
        salts_deleted: deleted.len(),
        partitions_dropped: dropped.len(),
        rollup_days: days.len(),
    })
}

/// How often the current visitors are recorded.
pub const CURRENT_INTERVAL: Duration = Duration::from_secs(60);

/// Runs a pass every `run.interval_s`, and records the current visitors every
/// [`CURRENT_INTERVAL`], until `shutdown` resolves. A failed pass is logged and retried at
/// the next interval: a ClickHouse outage must not stop salt rotation for good.
pub async fn forever(
    client: &Client,
    partitions: &Partitions,
    databases: &Databases,
    config: &Config,
    clock: fn() -> u32,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut passes = tokio::time::interval(config.run.interval_s.duration());
    let mut current = tokio::time::interval(CURRENT_INTERVAL);
    for timer in [&mut passes, &mut current] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    // Both fire at once; a pass records the current visitors itself.
    current.tick().await;
    loop {
        tokio::select! {
            _ = passes.tick() => match pass(client, partitions, databases, config, clock()).await {
                Ok(p) => tracing::info!(
                    salts_created = p.salts_created,
                    salts_deleted = p.salts_deleted,
                    partitions_dropped = p.partitions_dropped,
                    rollup_days = p.rollup_days,
                    "pass done"
                ),
                Err(error) => tracing::error!(%error, "pass failed"),
            },
            _ = current.tick() => {
                if let Err(error) =
                    rollups::record_current_visitors(client, databases, clock(), config.privacy.min_group_size).await
                {
                    tracing::warn!(%error, "recording the current visitors failed");
                }
            }
            () = &mut shutdown => return,
        }
    }
}
