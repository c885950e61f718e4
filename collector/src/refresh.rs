//! Control data that handlers read on every request, the salts and the blocklist, reloaded
//! from ClickHouse every `salts.refresh_interval_s` and swapped atomically: handlers read them
//! without a lock, and a failed reload keeps the previous data.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use clickhouse::Client;
use store::Databases;

use crate::{
    blocklist::{self, Blocklist},
    metrics::Metrics,
    salts::{self, SaltSet},
};

/// What handlers read; each part is replaced whole by a refresh.
#[derive(Default)]
pub struct Control {
    pub salts: ArcSwap<SaltSet>,
    pub blocklist: ArcSwap<Blocklist>,
}

/// Reloads now and then every `interval`, forever. A failure keeps the previous data (expired
/// salt periods still stop matching by time) and is logged and counted.
pub async fn forever(
    client: Client,
    databases: Databases,
    control: Arc<Control>,
    metrics: Arc<Metrics>,
    interval: Duration,
    timeout: Duration,
    clock: fn() -> u32,
) {
    loop {
        let reload = async {
            let salts = salts::load(&client, &databases, clock()).await?;
            let blocklist = blocklist::load(&client, &databases).await?;
            Ok::<_, clickhouse::error::Error>((salts, blocklist))
        };
        match tokio::time::timeout(timeout, reload).await.unwrap_or(Err(clickhouse::error::Error::TimedOut)) {
            Ok((salts, blocklist)) => {
                metrics.control_refreshes.with_label_values(&["ok"]).inc();
                metrics.salt_periods_loaded.set(salts.periods().count() as i64);
                metrics
                    .salt_oldest_period_start_seconds
                    .set(salts.periods().map(|p| i64::from(p.0)).min().unwrap_or(0));
                metrics.blocklist_entries.set(blocklist.len() as i64);
                if salts.keys_at(clock()).is_none() {
                    tracing::warn!(
                        "no salt for the current period: run `aggregator salts` (beacons get 503 until then)"
                    );
                }
                control.salts.store(Arc::new(salts));
                control.blocklist.store(Arc::new(blocklist));
            }
            Err(error) => {
                metrics.control_refreshes.with_label_values(&["error"]).inc();
                tracing::warn!(%error, "cannot refresh salts and blocklist; keeping the ones loaded");
            }
        }
        tokio::time::sleep(interval).await;
    }
}
