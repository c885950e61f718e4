//! Prometheus metrics, all in one place with conventional names and units. Labels carry
//! only bounded, non-identifying values (endpoints, reasons, tables, the configured site
//! ids): never an address, a cookie, a beacon's own string or a URL. Series of closed label
//! sets are created at start, at 0, so dashboards and alerts see them before the first event.

use beacon::Signal;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use store::EventType;

pub struct Metrics {
    registry: Registry,
    /// Requests answered, by endpoint and status code.
    pub http_requests: IntCounterVec,
    /// Time to answer, by endpoint ([`Endpoint::index`]).
    http_request_duration: Box<[Histogram]>,
    /// Beacons answered 202/200, by beacon type and site.
    pub beacons_accepted: IntCounterVec,
    /// Beacons refused, by reason (the same words as the error responses' reasons).
    pub beacons_rejected: IntCounterVec,
    /// Accepted beacons deliberately not stored, by reason and site.
    pub beacons_dropped: IntCounterVec,
    /// Accepted beacons from crawlers (stored for troubleshooting only).
    pub bot_hits: IntCounterVec,
    /// User-Agent cache lookups, by result ([`CacheResult::index`]).
    ua_cache_lookups: Box<[IntCounter]>,
    /// Beacons waiting between handlers and the batcher.
    pub sink_queue_beacons: IntGauge,
    /// How many beacons the queue holds (`sink.queue_capacity`), for alerts on a full queue.
    pub sink_queue_capacity_beacons: IntGauge,
    /// Rows taken from the queue and not yet inserted: buffered, or in an insert or retry.
    pub sink_pending_rows: IntGauge,
    /// Batches being inserted or retried.
    pub sink_inflight_batches: IntGauge,
    /// Rows by table and outcome (inserted / discarded: refused and over the dead-letter budget).
    pub sink_rows: IntCounterVec,
    /// Insert attempts by table and outcome (ok / transient_error / permanent_error).
    pub sink_inserts: IntCounterVec,
    /// Duration of insert attempts, by table.
    pub sink_insert_duration: HistogramVec,
    /// Bytes of spool segments on disk.
    pub spool_bytes: IntGauge,
    /// Spool segments on disk, sealed or open.
    pub spool_segments: IntGauge,
    /// Rows by table and outcome (written / replayed / blocked / erased: left out of a replay
    /// because a pseudonym of theirs is blocked, or was erased after they were received).
    pub spool_rows: IntCounterVec,
    /// `fsync` mode: time to write and fsync one group commit.
    pub spool_commit_duration: Histogram,
    /// `fsync` mode: beacons in one group commit.
    pub spool_commit_beacons: Histogram,
    /// Runs of spool bytes that failed their checks (torn or corrupt records) and were skipped.
    pub spool_corrupt_records: IntCounter,
    /// Bytes skipped in those runs.
    pub spool_skipped_bytes: IntCounter,
    /// Rows ClickHouse refused for their data, kept in the dead letters, by table.
    pub dead_letter_rows: IntCounterVec,
    /// Client connections open.
    pub http_connections: IntGauge,
    /// Connections refused over `server.max_connections`.
    pub http_connections_refused: IntCounter,
    /// Requests whose handler panicked (answered 500).
    pub http_request_panics: IntCounter,
    /// Reloads of salts and blocklist by outcome (ok / error).
    pub control_refreshes: IntCounterVec,
    /// Blocked pseudonyms held in memory.
    pub blocklist_entries: IntGauge,
    /// Salt periods held in memory.
    pub salt_periods_loaded: IntGauge,
    /// Start of the earliest salt period held, Unix seconds (0 when none).
    pub salt_oldest_period_start_seconds: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let ns = "webstats_collector";
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help).namespace(ns), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help).namespace(ns)).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let histogram_vec = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).namespace(ns).buckets(buckets), labels)
                .expect("valid metric");
            registry.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).namespace(ns).buckets(buckets))
                .expect("valid metric");
            registry.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(Opts::new(name, help).namespace(ns)).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };

        // Handles of the label sets counted per request, resolved once: a labelled lookup
        // hashes its labels and takes a lock (benches/README.md, issue 14).
        let http_request_duration = histogram_vec(
            "http_request_duration_seconds",
            "Time to answer an HTTP request.",
            &["endpoint"],
            vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0],
        );
        let ua_cache_lookups = counter_vec("ua_cache_lookups_total", "User-Agent cache lookups.", &["result"]);
        Self {
            http_requests: counter_vec("http_requests_total", "HTTP requests answered.", &["endpoint", "status"]),
            http_request_duration: resolve(Endpoint::ALL, |e| http_request_duration.with_label_values(&[e.label()])),
            beacons_accepted: counter_vec("beacons_accepted_total", "Beacons accepted.", &["type", "site"]),
            beacons_rejected: counter_vec("beacons_rejected_total", "Beacons refused, by reason.", &["reason"]),
            beacons_dropped: counter_vec(
                "beacons_dropped_total",
                "Accepted beacons not stored, by reason.",
                &["reason", "site"],
            ),
            bot_hits: counter_vec(
                "bot_hits_total",
                "Accepted beacons kept out of the audience as bots, by the signal that told.",
                &["signal"],
            ),
            ua_cache_lookups: resolve(CacheResult::ALL, |r| ua_cache_lookups.with_label_values(&[r.label()])),
            sink_queue_beacons: gauge("sink_queue_beacons", "Beacons waiting for the batcher."),
            sink_queue_capacity_beacons: gauge("sink_queue_capacity_beacons", "Beacons the sink queue holds."),
            sink_pending_rows: gauge("sink_pending_rows", "Rows buffered or being inserted, not yet in ClickHouse."),
            sink_inflight_batches: gauge("sink_inflight_batches", "Batches being inserted or retried."),
            sink_rows: counter_vec("sink_rows_total", "Rows by table and outcome.", &["table", "outcome"]),
            sink_inserts: counter_vec(
                "sink_inserts_total",
                "Insert attempts by table and outcome.",
                &["table", "outcome"],
            ),
            sink_insert_duration: histogram_vec(
                "sink_insert_duration_seconds",
                "Duration of one insert attempt.",
                &["table"],
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ),
            spool_bytes: gauge("spool_bytes", "Bytes of spool segments on disk."),
            spool_segments: gauge("spool_segments", "Spool segments on disk."),
            spool_rows: counter_vec("spool_rows_total", "Spooled rows by table and outcome.", &["table", "outcome"]),
            spool_commit_duration: histogram(
                "spool_commit_duration_seconds",
                "fsync mode: time to write and fsync one group commit.",
                vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            ),
            spool_commit_beacons: histogram(
                "spool_commit_beacons",
                "fsync mode: beacons in one group commit.",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0],
            ),
            spool_corrupt_records: counter(
                "spool_corrupt_records_total",
                "Runs of spool bytes that failed their checks and were skipped.",
            ),
            spool_skipped_bytes: counter("spool_skipped_bytes_total", "Spool bytes skipped as corrupt."),
            dead_letter_rows: counter_vec(
                "dead_letter_rows_total",
                "Rows ClickHouse refused for their data, kept as dead letters.",
                &["table"],
            ),
            http_connections: gauge("http_connections", "Client connections open."),
            http_connections_refused: counter(
                "http_connections_refused_total",
                "Connections refused over server.max_connections.",
            ),
            http_request_panics: counter("http_request_panics_total", "Requests whose handler panicked."),
            control_refreshes: counter_vec(
                "control_refreshes_total",
                "Reloads of salts and blocklist by outcome.",
                &["outcome"],
            ),
            blocklist_entries: gauge("blocklist_entries", "Blocked pseudonyms held in memory."),
            salt_periods_loaded: gauge("salt_periods_loaded", "Salt periods held in memory."),
            salt_oldest_period_start_seconds: gauge(
                "salt_oldest_period_start_seconds",
                "Start of the earliest salt period held, Unix seconds.",
            ),
            registry,
        }
        .with_closed_series()
    }

    /// Creates the series of the closed label sets not resolved in `new` at 0.
    fn with_closed_series(self) -> Self {
        for outcome in RefreshOutcome::ALL {
            self.control_refreshes.with_label_values(&[outcome.label()]);
        }
        for signal in Signal::ALL {
            self.bot_hits.with_label_values(&[signal.label()]);
        }
        self
    }

    /// Creates the per-table series of the sink at 0.
    pub fn register_tables<'a>(&self, tables: impl IntoIterator<Item = &'a str>) {
        for table in tables {
            for outcome in RowOutcome::ALL {
                self.sink_rows.with_label_values(&[table, outcome.label()]);
            }
            for outcome in InsertOutcome::ALL {
                self.sink_inserts.with_label_values(&[table, outcome.label()]);
            }
            for outcome in SpoolRowOutcome::ALL {
                self.spool_rows.with_label_values(&[table, outcome.label()]);
            }
            self.sink_insert_duration.with_label_values(&[table]);
            self.dead_letter_rows.with_label_values(&[table]);
        }
    }

    /// Time to answer a request of `endpoint`.
    pub fn http_request_duration(&self, endpoint: Endpoint) -> &Histogram {
        &self.http_request_duration[endpoint.index()]
    }

    pub fn ua_cache_lookups(&self, result: CacheResult) -> &IntCounter {
        &self.ua_cache_lookups[result.index()]
    }

    /// A configured site's counters, which creates their series at 0.
    pub fn site_counters(&self, site: &str) -> SiteCounters {
        SiteCounters {
            accepted: EventType::ALL.map(|kind| self.beacons_accepted.with_label_values(&[kind.as_str(), site])),
            dropped: resolve(DropReason::ALL, |reason| self.beacons_dropped.with_label_values(&[reason.label(), site])),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        out
    }
}

/// The beacon counters of one site, resolved once (per beacon, a labelled lookup showed).
pub struct SiteCounters {
    /// In [`EventType::ALL`]'s order.
    accepted: [IntCounter; EventType::ALL.len()],
    /// By [`DropReason::index`].
    dropped: Box<[IntCounter]>,
}

impl SiteCounters {
    pub fn accepted(&self, kind: EventType) -> &IntCounter {
        // The type's place in `EventType::ALL`; a match, so a new type does not compile unplaced.
        let index = match kind {
            EventType::Pageview => 0,
            EventType::Event => 1,
            EventType::Timing => 2,
            EventType::Error => 3,
        };
        &self.accepted[index]
    }

    pub fn dropped(&self, reason: DropReason) -> &IntCounter {
        &self.dropped[reason.index()]
    }
}

/// A metric handle per label value, in `values`' order.
fn resolve<L: Copy, M>(values: &[L], handle: impl Fn(L) -> M) -> Box<[M]> {
    values.iter().map(|value| handle(*value)).collect()
}

/// An enum of a label's values, each spelled once.
macro_rules! labels {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            /// The value's place in [`Self::ALL`].
            #[allow(dead_code, reason = "only the labels of handles resolved ahead use it")]
            pub fn index(self) -> usize {
                self as usize
            }

            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }
        }
    };
}

labels!(
    /// `sink_rows_total{outcome}`.
    RowOutcome { Inserted => "inserted", Discarded => "discarded" }
);
labels!(
    /// `sink_inserts_total{outcome}`.
    InsertOutcome { Ok => "ok", TransientError => "transient_error", PermanentError => "permanent_error" }
);
labels!(
    /// `spool_rows_total{outcome}`.
    SpoolRowOutcome { Written => "written", Replayed => "replayed", Blocked => "blocked", Erased => "erased" }
);
labels!(
    /// `control_refreshes_total{outcome}`.
    RefreshOutcome { Ok => "ok", Error => "error" }
);
labels!(
    /// `ua_cache_lookups_total{result}`.
    CacheResult { Hit => "hit", Miss => "miss" }
);
labels!(
    /// `beacons_dropped_total{reason}`.
    DropReason { DoNotTrack => "do_not_track", Blocked => "blocked" }
);
labels!(
    /// `endpoint` of the HTTP metrics: the paths of docs/http-api.md, and everything else.
    Endpoint {
        Event => "event",
        EventGif => "event_gif",
        Script => "script",
        Healthz => "healthz",
        Readyz => "readyz",
        Metrics => "metrics",
        Other => "other",
    }
);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sites_counters_are_its_labelled_series() {
        let metrics = Metrics::new();
        let counters = metrics.site_counters("lk");
        for (n, kind) in EventType::ALL.into_iter().enumerate() {
            counters.accepted(kind).inc_by(n as u64 + 1);
        }
        for reason in DropReason::ALL {
            counters.dropped(*reason).inc();
        }
        for (n, kind) in EventType::ALL.into_iter().enumerate() {
            assert_eq!(metrics.beacons_accepted.with_label_values(&[kind.as_str(), "lk"]).get(), n as u64 + 1);
        }
        for reason in DropReason::ALL {
            assert_eq!(metrics.beacons_dropped.with_label_values(&[reason.label(), "lk"]).get(), 1);
        }
    }
}
