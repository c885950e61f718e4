//! The collector: a hyper endpoint that turns beacons into pseudonymised rows in ClickHouse.
//!
//! A request flows through `service` (connection limit, then layers: body cap, load shedding,
//! concurrency limit, timeout, panic isolation) into `handlers`, which apply the per-prefix
//! `rate_limit`, parse the beacon (`beacon`), check the site, and hand it to the pure
//! `pipeline`: URL hygiene (`urls`), enrichment (`enrich`), pseudonymisation (keyed BLAKE3
//! under the day's salt from `salts`), and drops blocked pseudonyms (`blocklist`; both reloaded
//! by `refresh`). The pipeline's only output, `Pseudonymised`, is encoded once (`batch`) and
//! handed to the `sink`, which batches and inserts it, with the disk `spool` behind it for
//! outages, crashes and the `fsync` mode. Refusals become responses in `respond`. `app`
//! assembles it all from a validated `config`. See ARCHITECTURE.md and RELIABILITY.md.

mod app;
mod batch;
mod beacon;
mod blocklist;
mod client_ip;
mod config;
mod enrich;
mod handlers;
mod metrics;
mod pipeline;
mod rate_limit;
mod refresh;
mod respond;
mod salts;
mod scrub;
mod service;
mod sink;
mod snippet;
mod spool;
mod urls;

pub use crate::{
    app::run,
    batch::EncodedBeacon,
    beacon::{Beacon, BeaconError, from_json as parse_beacon, from_query as parse_beacon_query},
    blocklist::Blocklist,
    config::{Config, MAX_BODY_BYTES, SiteConfig},
    enrich::{AgentParser, GeoDb},
    pipeline::{Controls, Outcome, Pipeline, Pseudonymised, RequestFacts, Site},
};
