//! The contract between the collector, ClickHouse and the aggregator.
//!
//! Everything both sides must agree on lives here and only here: how to connect
//! ([`ClickHouseConfig`]), what the databases are called ([`Databases`]), the columns of every
//! table ([`AudienceRow`], [`TroubleshootingRow`], [`SaltRow`], [`MigrationRow`], kept in step
//! with the DDL by a test against a real server), the DDL itself ([`BOOTSTRAP`] and the
//! versioned [`MIGRATIONS`]), how rows are encoded ([`rowbinary`]) and how pseudonyms are
//! computed ([`pseudonym`]); on a ClickHouse cluster, how that DDL is distributed
//! ([`cluster`]). The crate does no I/O of its own beyond building a client.

pub mod cluster;
mod config;
mod databases;
mod migrations;
pub mod pseudonym;
pub mod reference;
pub mod roles;
mod rollups;
pub mod rowbinary;
mod rows;

pub use crate::{
    config::{ClickHouseConfig, ConfigProblem, LoadError, Millis, Seconds, load_toml, parse_toml, read_cookie_key},
    databases::{Databases, InvalidPrefix, Scope},
    migrations::{BOOTSTRAP, MIGRATIONS, Migration, added_column, split_statements},
    rollups::{CURRENT_VISITORS_TABLE, CURRENT_WINDOW_S, Grain, Measures, ROLLUPS, Rollup, VISIT_GAP_S},
    rows::{
        AudienceRow, AuditRow, BLOCKED_SUBJECTS_SQL, BlocklistRow, ERASED_SUBJECTS_SQL, ErasureRow, EventType,
        MigrationRow, RowSubject, SaltRow, SubjectKind, TroubleshootingRow, day_number,
    },
};
