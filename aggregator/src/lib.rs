//! The aggregator owns ClickHouse: it applies migrations (`migrate`), creates salts ahead of
//! time and deletes expired ones (`salts`), drops partitions past retention (`retention`),
//! records every deletion (`audit`), runs those jobs periodically (`run`), answers
//! data-subject requests (`subject`), and reports (`stats`). Every job is a plain async function over a `clickhouse::Client`, so the binary is
//! a thin dispatcher. See ARCHITECTURE.md.

mod audit;
mod channels;
mod config;
mod migrate;
mod partitions;
mod retention;
mod rollups;
mod run;
mod salts;
mod stats;
mod subject;

pub use crate::{
    config::{Config, PrivacyConfig, RetentionConfig, RunConfig, SaltsConfig},
    migrate::{MigrateError, Report as MigrateReport, complete_nodes, migrate},
    partitions::Partitions,
    retention::enforce as enforce_retention,
    rollups::{days_with, record_current_visitors, refresh as refresh_rollups},
    run::{Pass, PassError, forever as run_forever, pass as run_pass},
    salts::{SaltError, ensure as ensure_salts, expire as expire_salts, period_start},
    stats::{PageStats, Stats, stats},
    subject::{
        Identity, Subject, SubjectError, days as subject_days, erase, export, resolve as resolve_subject, set_blocked,
    },
};
