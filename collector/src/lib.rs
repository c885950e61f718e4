//! The collector: a hyper endpoint that turns beacons into pseudonymised rows in ClickHouse.
//!
//! A request flows through `http` (the connection limit, then the layers: body cap, load
//! shedding, concurrency limit, timeout, panic isolation) to a `Route`. A beacon route checks
//! the per-network rate limit, parses the beacon (`beacon::parse`) and hands it to `ingest`,
//! which checks the site, runs the pure pipeline of the `beacon` crate under the salts and
//! blocklist of the moment (`control`, reloaded from ClickHouse), encodes the rows once and
//! submits them to the `sink`, which batches and inserts them, with a disk spool behind it for
//! outages, crashes and the `fsync` mode. `refusal` is the one table of refusals. `app`
//! assembles it all from a validated `config`. See ARCHITECTURE.md and docs/reliability.md.
//!
//! Module dependencies point one way: `app` → `http` → `ingest` → `control`, `sink` →
//! `metrics`, `config`.

mod app;
mod config;
mod control;
mod http;
mod ingest;
mod metrics;
mod refusal;
mod sink;

pub use crate::{
    app::run,
    config::{Config, MAX_BODY_BYTES, SiteConfig},
    http::http1_builder,
    sink::EncodedBeacon,
};
