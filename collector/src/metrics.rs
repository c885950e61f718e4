//! Prometheus metrics, all in one place with conventional names and units. Labels carry
//! only bounded, non-identifying values (endpoints, reasons, tables): never an address,
//! a cookie, a site-supplied string or a URL.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Requests answered, by endpoint and status code.
    pub http_requests: IntCounterVec,
    /// Time to answer, by endpoint.
    pub http_request_duration: HistogramVec,
    /// Beacons answered 202/200, by beacon type.
    pub beacons_accepted: IntCounterVec,
    /// Beacons refused, by reason (the same words as the error responses' reasons).
    pub beacons_rejected: IntCounterVec,
    /// Accepted beacons deliberately not stored, by reason.
    pub beacons_dropped: IntCounterVec,
    /// Accepted beacons from crawlers (stored for troubleshooting only).
    pub bot_hits: IntCounter,
    /// User-Agent cache lookups, by result (hit/miss).
    pub ua_cache_lookups: IntCounterVec,
    /// Beacons waiting between handlers and the batcher.
    pub sink_queue_beacons: IntGauge,
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
    /// Rows by table and outcome (written / replayed).
    pub spool_rows: IntCounterVec,
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
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(Opts::new(name, help).namespace(ns)).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };

        Self {
            http_requests: counter_vec("http_requests_total", "HTTP requests answered.", &["endpoint", "status"]),
            http_request_duration: histogram_vec(
                "http_request_duration_seconds",
                "Time to answer an HTTP request.",
                &["endpoint"],
                vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0],
            ),
            beacons_accepted: counter_vec("beacons_accepted_total", "Beacons accepted.", &["type"]),
            beacons_rejected: counter_vec("beacons_rejected_total", "Beacons refused, by reason.", &["reason"]),
            beacons_dropped: counter_vec(
                "beacons_dropped_total",
                "Accepted beacons not stored, by reason.",
                &["reason"],
            ),
            bot_hits: counter("bot_hits_total", "Accepted beacons from crawlers."),
            ua_cache_lookups: counter_vec("ua_cache_lookups_total", "User-Agent cache lookups.", &["result"]),
            sink_queue_beacons: gauge("sink_queue_beacons", "Beacons waiting for the batcher."),
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
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
