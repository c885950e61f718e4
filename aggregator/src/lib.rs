//! The aggregator owns ClickHouse: it applies migrations (`migrate`), keeps salts for the
//! current and next period (`salts`), and reports (`stats`). Retention, data-subject requests
//! and roles come next. Every job is a plain async function over a `clickhouse::Client`, so the
//! binary is a thin dispatcher. See ARCHITECTURE.md.

mod config;
mod migrate;
mod salts;
mod stats;

pub use crate::{
    config::{Config, SaltsConfig},
    migrate::{MigrateError, Report as MigrateReport, migrate},
    salts::{SaltError, ensure as ensure_salts, period_start},
    stats::{PageStats, Stats, stats},
};
