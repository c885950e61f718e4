//! Load for the fault tests: beacons sent from background threads at a steady rate, every
//! answer recorded ([`Load`], [`Tally`]), and what reached ClickHouse counted beacon by beacon
//! ([`wait_arrival`], [`Arrival`]).
//!
//! Every beacon is unique (its page is `/p/<n / 1000>-<n % 1000>`, which URL hygiene keeps: no
//! run of 5 digits), so each can be looked up in both stores.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{Collector, Install, metric_sum};

/// The test site, and no per-network rate limit: the load comes from few addresses.
pub const SITE: &str =
    "[rate_limit]\nbeacons_per_second = 0\n[[sites]]\nid = \"f\"\nallowed_hosts = [\"f.example.ru\"]\n";
pub const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

/// The page of beacon `n`.
pub fn page(n: u64) -> String {
    format!("/p/{}-{:03}", n / 1000, n % 1000)
}

/// The `n` of a page written by [`page`]; `None` for anything else.
pub fn page_id(path: &str) -> Option<u64> {
    let (high, low) = path.strip_prefix("/p/")?.split_once('-')?;
    let digits = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(high, 4) || low.len() != 3 || !digits(low, 3) || (high.len() > 1 && high.starts_with('0')) {
        return None;
    }
    Some(high.parse::<u64>().ok()? * 1000 + low.parse::<u64>().ok()?)
}

pub fn beacon_body(n: u64) -> String {
    format!(r#"{{"site":"f","url":"https://f.example.ru{}"}}"#, page(n))
}

/// Prints the collector's spool and sink counters (of its current run).
pub fn report_sink(test: &str, c: &Collector) {
    let Some((_, metrics)) = c.try_get("/metrics") else { return };
    let m = |name: &str, labels: &[(&str, &str)]| metric_sum(&metrics, name, labels);
    eprintln!(
        "[{test}] collector metrics (this run): spool rows written {} / replayed {}, corrupt records {}, \
         dead-letter rows {}, rows inserted {}, spool bytes {}",
        m("webstats_collector_spool_rows_total", &[("outcome", "written")]),
        m("webstats_collector_spool_rows_total", &[("outcome", "replayed")]),
        m("webstats_collector_spool_corrupt_records_total", &[]),
        m("webstats_collector_dead_letter_rows_total", &[]),
        m("webstats_collector_sink_rows_total", &[("outcome", "inserted")]),
        m("webstats_collector_spool_bytes", &[]),
    );
}

pub fn wait_ready(c: &Collector) {
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz to answer 200 (salts loaded)");
}

pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The last `n` lines of a collector's log, for failure messages.
pub fn log_tail(c: &Collector, n: usize) -> String {
    let log = c.log_text();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Load: beacons from background threads, each answer recorded.

/// The answer to one beacon.
#[derive(Debug, Clone)]
pub struct Answer {
    pub n: u64,
    /// Since the load started.
    pub at: Duration,
    /// 0: no HTTP answer (connection refused or reset, timeout).
    pub status: u16,
    pub retry_after: Option<String>,
    /// `reason` of a JSON error body.
    pub reason: Option<String>,
    /// The transport error or the body of an unexpected answer.
    pub detail: String,
}

/// Beacons sent at a steady rate over a few keep-alive connections (one thread each) until
/// [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Answer>>>,
    started: Instant,
    refused: Arc<AtomicU64>,
}

impl Load {
    /// `per_second` in total over `connections`; `f64::INFINITY`: as fast as answers come.
    pub fn start(addr: SocketAddr, per_second: f64, connections: usize) -> Load {
        Self::spawn(addr, per_second, connections, None)
    }

    /// Sends exactly the beacons `ids` as fast as answers come, and returns the answers.
    pub fn send_all(addr: SocketAddr, ids: Range<u64>, connections: usize) -> Tally {
        Self::spawn(addr, f64::INFINITY, connections, Some(ids)).join()
    }

    fn spawn(addr: SocketAddr, per_second: f64, connections: usize, ids: Option<Range<u64>>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let next_id = Arc::new(AtomicU64::new(ids.as_ref().map_or(0, |r| r.start)));
        let end = ids.map_or(u64::MAX, |r| r.end);
        let started = Instant::now();
        let interval = Duration::from_secs_f64(connections as f64 / per_second);
        let threads = (0..connections)
            .map(|_| {
                let (stop, refused, next_id) = (stop.clone(), refused.clone(), next_id.clone());
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(5)))
                        .build()
                        .into();
                    let url = format!("http://{addr}/api/event");
                    let mut answers = Vec::new();
                    let mut due = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        } else if now - due > interval {
                            // Behind (a stall): carry on at the rate, without a burst.
                            due = now;
                        }
                        due += interval;
                        let n = next_id.fetch_add(1, Ordering::Relaxed);
                        if n >= end {
                            break;
                        }
                        let answer = send(&agent, &url, n, started);
                        if answer.status != 202 {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        answers.push(answer);
                    }
                    answers
                })
            })
            .collect();
        Load { stop, threads, started, refused }
    }

    /// Time since the load started (the clock of [`Answer::at`]).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Answers other than 202 so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    fn join(mut self) -> Tally {
        let mut answers: Vec<Answer> =
            self.threads.drain(..).flat_map(|t| t.join().expect("a load thread panicked")).collect();
        answers.sort_by_key(|a| a.n);
        Tally { answers, elapsed: self.started.elapsed() }
    }
}

impl Drop for Load {
    /// A failing test stops its load; the threads end within one request timeout.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn send(agent: &ureq::Agent, url: &str, n: u64, started: Instant) -> Answer {
    let ip = format!("198.51.100.{}", n % 250);
    let result = agent
        .post(url)
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "https://f.example.ru")
        .header("user-agent", UA)
        .header("x-forwarded-for", &ip)
        .send(beacon_body(n));
    let at = started.elapsed();
    match result {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            // Read to the end, so the connection is reused.
            let body = response.body_mut().read_to_string().unwrap_or_default();
            let reason = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned));
            Answer { n, at, status, retry_after, reason, detail: if status == 202 { String::new() } else { body } }
        }
        Err(error) => Answer { n, at, status: 0, retry_after: None, reason: None, detail: error.to_string() },
    }
}

/// Every answer of a load.
pub struct Tally {
    pub answers: Vec<Answer>,
    pub elapsed: Duration,
}

impl Tally {
    pub fn accepted(&self) -> Vec<u64> {
        self.answers.iter().filter(|a| a.status == 202).map(|a| a.n).collect()
    }

    pub fn accepted_between(&self, from: Duration, to: Duration) -> usize {
        self.answers.iter().filter(|a| a.status == 202 && a.at >= from && a.at <= to).count()
    }

    pub fn refused(&self) -> Vec<&Answer> {
        self.answers.iter().filter(|a| a.status != 202 && a.status != 0).collect()
    }

    pub fn unanswered(&self) -> Vec<&Answer> {
        self.answers.iter().filter(|a| a.status == 0).collect()
    }

    /// Prints the counts by status and reason.
    pub fn report(&self, test: &str) {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for a in &self.answers {
            let key = match (a.status, &a.reason) {
                (0, _) => "no answer".to_owned(),
                (s, Some(r)) => format!("{s} {r}"),
                (s, None) => s.to_string(),
            };
            *by.entry(key).or_default() += 1;
        }
        eprintln!(
            "[{test}] sent {} beacons in {} ({:.0}/s): {by:?}",
            self.answers.len(),
            secs(self.elapsed),
            self.answers.len() as f64 / self.elapsed.as_secs_f64()
        );
        if let Some(a) = self.unanswered().first() {
            eprintln!("[{test}] first beacon without an answer: #{} at {}: {}", a.n, secs(a.at), a.detail);
        }
    }

    /// Every HTTP refusal is a 503 with `Retry-After` and, if `reasons` is not empty, one of
    /// those reasons.
    pub fn assert_refusals_are_503_with_retry_after(&self, reasons: &[&str]) {
        for a in self.refused() {
            assert_eq!(a.status, 503, "beacon #{} answered {} (expected 202 or 503): {}", a.n, a.status, a.detail);
            assert!(
                a.retry_after.as_deref().is_some_and(|v| v.trim().parse::<u32>().is_ok()),
                "503 for beacon #{} without a valid Retry-After ({:?}): {}",
                a.n,
                a.retry_after,
                a.detail
            );
            if !reasons.is_empty() {
                let reason = a.reason.as_deref().unwrap_or("");
                assert!(
                    reasons.contains(&reason),
                    "503 for beacon #{} with reason {reason:?}, not one of {reasons:?}",
                    a.n
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What arrived in ClickHouse.

/// Rows of one table by beacon, and rows that are no beacon of the test.
struct Stored {
    per_id: HashMap<u64, u64>,
    garbage: Vec<String>,
}

fn stored(install: &Install, table: &str) -> Stored {
    let tsv = install.sql(&format!("SELECT site, path, count() FROM {table} GROUP BY site, path FORMAT TSV"));
    let mut per_id = HashMap::new();
    let mut garbage = Vec::new();
    for line in tsv.lines() {
        let mut fields = line.split('\t');
        let (site, path, count) =
            (fields.next().unwrap_or(""), fields.next().unwrap_or(""), fields.next().unwrap_or("0"));
        let count: u64 = count.parse().unwrap_or(0);
        match page_id(path) {
            Some(n) if site == "f" => *per_id.entry(n).or_default() += count,
            _ => garbage.push(format!("{count} × site {site:?} path {path:?}")),
        }
    }
    Stored { per_id, garbage }
}

/// How the accepted beacons fared in one table.
pub struct Arrival {
    pub table: String,
    pub missing: Vec<u64>,
    /// Rows beyond the first for an accepted beacon.
    pub duplicates: u64,
    /// Beacons stored that were not answered 202 (refused, or the answer was lost).
    pub unacknowledged: usize,
    pub garbage: Vec<String>,
    pub waited: Duration,
}

impl Arrival {
    pub fn report(&self, test: &str) {
        eprintln!(
            "[{test}] {}: missing {}, duplicate rows {}, stored without a 202 {}, foreign rows {} (after {})",
            self.table,
            self.missing.len(),
            self.duplicates,
            self.unacknowledged,
            self.garbage.len(),
            secs(self.waited)
        );
    }

    pub fn assert_nothing_missing(&self, c: &Collector) {
        if self.missing.is_empty() {
            return;
        }
        let metrics = c.try_get("/metrics").map(|m| m.1).unwrap_or_default();
        let sink: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                !l.starts_with('#')
                    && ["spool", "dead_letter", "sink_rows", "sink_inserts", "rejected"].iter().any(|k| l.contains(k))
            })
            .collect();
        panic!(
            "{} accepted beacons are missing from {} (first: {:?}); sink metrics:\n{}\ncollector log tail:\n{}",
            self.missing.len(),
            self.table,
            &self.missing[..self.missing.len().min(20)],
            sink.join("\n"),
            log_tail(c, 60)
        );
    }
}

/// Waits up to `within` until every beacon of `expected` has a row in `table`; then waits for
/// stragglers a little and counts.
pub fn wait_arrival(install: &Install, table: &str, expected: &[u64], within: Duration) -> Arrival {
    let started = Instant::now();
    let missing_now = |s: &Stored| expected.iter().copied().filter(|n| !s.per_id.contains_key(n)).collect::<Vec<_>>();
    let mut s = stored(install, table);
    while !missing_now(&s).is_empty() && started.elapsed() < within {
        std::thread::sleep(Duration::from_millis(500));
        s = stored(install, table);
    }
    let waited = started.elapsed();
    // Late duplicates (replays of batches already inserted) are part of the report; on a
    // cluster, every replica must have fetched what the others stored.
    std::thread::sleep(Duration::from_secs(2));
    install.sync_replicas();
    s = stored(install, table);
    let expected_set: BTreeSet<u64> = expected.iter().copied().collect();
    let duplicates = expected.iter().map(|n| s.per_id.get(n).copied().unwrap_or(0).saturating_sub(1)).sum();
    let unacknowledged = s.per_id.keys().filter(|n| !expected_set.contains(n)).count();
    Arrival {
        table: table.to_owned(),
        missing: missing_now(&s),
        duplicates,
        unacknowledged,
        garbage: s.garbage,
        waited,
    }
}

/// Both tables hold every accepted beacon (each beacon is one audience and one
/// troubleshooting row: the agent is a browser), and nothing else; returns how each table
/// fared, duplicates included.
pub fn assert_all_arrive(
    test: &str,
    install: &Install,
    c: &Collector,
    accepted: &[u64],
    within: Duration,
) -> Vec<Arrival> {
    let arrivals = [install.audience(), install.troubleshooting()].map(|table| {
        let arrival = wait_arrival(install, &table, accepted, within);
        arrival.report(test);
        arrival.assert_nothing_missing(c);
        assert!(arrival.garbage.is_empty(), "rows that are no beacon of the test in {table}: {:?}", arrival.garbage);
        arrival
    });
    report_sink(test, c);
    arrivals.into()
}
