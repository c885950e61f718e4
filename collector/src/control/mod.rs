//! Control data that ingest reads on every beacon, the salts and the blocklist, reloaded
//! from ClickHouse every `salts.refresh_interval_s` and swapped atomically: readers take no
//! lock, and a failed reload keeps the previous data.
//!
//! [`load_blocklist`] and [`load_erasures`] are also what the sink's shippers read before each
//! replay of a spool segment (wired in `app`; docs/privacy-model.md section 6).

mod salts;

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use beacon::Blocklist;
use clickhouse::{Client, Row};
use serde::Deserialize;
use store::{BLOCKED_SUBJECTS_SQL, Databases, ERASED_SUBJECTS_SQL, SubjectKind};

pub use self::salts::SaltSet;
use crate::metrics::{Metrics, RefreshOutcome};

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
            let blocklist = load_blocklist(&client, &databases).await?;
            Ok::<_, clickhouse::error::Error>((salts, blocklist))
        };
        match tokio::time::timeout(timeout, reload).await.unwrap_or(Err(clickhouse::error::Error::TimedOut)) {
            Ok((salts, blocklist)) => {
                metrics.control_refreshes.with_label_values(&[RefreshOutcome::Ok.label()]).inc();
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
                metrics.control_refreshes.with_label_values(&[RefreshOutcome::Error.label()]).inc();
                tracing::warn!(%error, "cannot refresh salts and blocklist; keeping the ones loaded");
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// The subjects blocked now (`store::BLOCKED_SUBJECTS_SQL`).
pub async fn load_blocklist(client: &Client, databases: &Databases) -> Result<Blocklist, clickhouse::error::Error> {
    #[derive(Row, Deserialize)]
    struct Blocked {
        site: String,
        subject_kind: SubjectKind,
        subject_id: u64,
    }
    let rows = client.query(&databases.render(BLOCKED_SUBJECTS_SQL)).fetch_all::<Blocked>().await?;
    Ok(rows.into_iter().map(|row| (row.site, row.subject_kind, row.subject_id)).collect())
}

/// The erased subjects, `(site, kind, id, time of the latest erasure)` (`store::ERASED_SUBJECTS_SQL`).
pub async fn load_erasures(
    client: &Client,
    databases: &Databases,
) -> Result<Vec<(String, SubjectKind, u64, u32)>, clickhouse::error::Error> {
    #[derive(Row, Deserialize)]
    struct Erased {
        site: String,
        subject_kind: SubjectKind,
        subject_id: u64,
        erased_at: u32,
    }
    let rows = client.query(&databases.render(ERASED_SUBJECTS_SQL)).fetch_all::<Erased>().await?;
    Ok(rows.into_iter().map(|row| (row.site, row.subject_kind, row.subject_id, row.erased_at)).collect())
}
