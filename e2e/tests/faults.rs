//! Fault injection: ClickHouse stopped under load, the collector SIGKILLed, the spool full,
//! a spool segment corrupted, a batch ClickHouse refuses for its data. Each test runs on a
//! ClickHouse server of its own (so they run in parallel and never disturb the shared one),
//! over loopback, with every wait bounded.
//!
//! The invariant checked everywhere: a beacon answered 202 is in ClickHouse afterwards.
//! Every beacon is unique (its page is `/p/<n / 1000>-<n % 1000>`, which URL hygiene keeps:
//! no run of 5 digits), so each can be looked up. Duplicates are allowed and reported;
//! refusals are allowed if they are 503 with `Retry-After`.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{IpAddr, SocketAddr},
    ops::Range,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use e2e::{Collector, Install, Server, metric_sum, scan};

/// The test site, and no per-network rate limit: the load comes from few addresses.
const SITE: &str = "[rate_limit]\nbeacons_per_second = 0\n[[sites]]\nid = \"f\"\nallowed_hosts = [\"f.example.ru\"]\n";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

/// The page of beacon `n`.
fn page(n: u64) -> String {
    format!("/p/{}-{:03}", n / 1000, n % 1000)
}

/// The `n` of a page written by [`page`]; `None` for anything else.
fn page_id(path: &str) -> Option<u64> {
    let (high, low) = path.strip_prefix("/p/")?.split_once('-')?;
    let digits = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(high, 4) || low.len() != 3 || !digits(low, 3) || (high.len() > 1 && high.starts_with('0')) {
        return None;
    }
    Some(high.parse::<u64>().ok()? * 1000 + low.parse::<u64>().ok()?)
}

fn beacon_body(n: u64) -> String {
    format!(r#"{{"site":"f","url":"https://f.example.ru{}"}}"#, page(n))
}

/// Prints the collector's spool and sink counters (of its current run).
fn report_sink(test: &str, c: &Collector) {
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

fn wait_ready(c: &Collector) {
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz to answer 200 (salts loaded)");
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The last `n` lines of a collector's log, for failure messages.
fn log_tail(c: &Collector, n: usize) -> String {
    let log = c.log_text();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Load: beacons from background threads, each answer recorded.

/// The answer to one beacon.
#[derive(Debug, Clone)]
struct Answer {
    n: u64,
    /// Since the load started.
    at: Duration,
    /// 0: no HTTP answer (connection refused or reset, timeout).
    status: u16,
    retry_after: Option<String>,
    /// `reason` of a JSON error body.
    reason: Option<String>,
    /// The transport error or the body of an unexpected answer.
    detail: String,
}

/// Beacons sent at a steady rate over a few keep-alive connections (one thread each) until
/// [`Load::finish`].
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Answer>>>,
    started: Instant,
    refused: Arc<AtomicU64>,
}

impl Load {
    /// `per_second` in total over `connections`; `f64::INFINITY`: as fast as answers come.
    fn start(addr: SocketAddr, per_second: f64, connections: usize) -> Load {
        Self::spawn(addr, per_second, connections, None)
    }

    /// Sends exactly the beacons `ids` as fast as answers come, and returns the answers.
    fn send_all(addr: SocketAddr, ids: Range<u64>, connections: usize) -> Tally {
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
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Answers other than 202 so far.
    fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn finish(self) -> Tally {
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
struct Tally {
    answers: Vec<Answer>,
    elapsed: Duration,
}

impl Tally {
    fn accepted(&self) -> Vec<u64> {
        self.answers.iter().filter(|a| a.status == 202).map(|a| a.n).collect()
    }

    fn accepted_between(&self, from: Duration, to: Duration) -> usize {
        self.answers.iter().filter(|a| a.status == 202 && a.at >= from && a.at <= to).count()
    }

    fn refused(&self) -> Vec<&Answer> {
        self.answers.iter().filter(|a| a.status != 202 && a.status != 0).collect()
    }

    fn unanswered(&self) -> Vec<&Answer> {
        self.answers.iter().filter(|a| a.status == 0).collect()
    }

    /// Prints the counts by status and reason.
    fn report(&self, test: &str) {
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
    fn assert_refusals_are_503_with_retry_after(&self, reasons: &[&str]) {
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
struct Arrival {
    table: String,
    missing: Vec<u64>,
    /// Rows beyond the first for an accepted beacon.
    duplicates: u64,
    /// Beacons stored that were not answered 202 (refused, or the answer was lost).
    unacknowledged: usize,
    garbage: Vec<String>,
    waited: Duration,
}

impl Arrival {
    fn report(&self, test: &str) {
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

    fn assert_nothing_missing(&self, c: &Collector) {
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
fn wait_arrival(install: &Install, table: &str, expected: &[u64], within: Duration) -> Arrival {
    let started = Instant::now();
    let missing_now = |s: &Stored| expected.iter().copied().filter(|n| !s.per_id.contains_key(n)).collect::<Vec<_>>();
    let mut s = stored(install, table);
    while !missing_now(&s).is_empty() && started.elapsed() < within {
        std::thread::sleep(Duration::from_millis(500));
        s = stored(install, table);
    }
    let waited = started.elapsed();
    // Late duplicates (replays of batches already inserted) are part of the report.
    std::thread::sleep(Duration::from_secs(2));
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
/// troubleshooting row: the agent is a browser).
fn assert_all_arrive(test: &str, install: &Install, c: &Collector, accepted: &[u64], within: Duration) {
    for table in [install.audience(), install.troubleshooting()] {
        let arrival = wait_arrival(install, &table, accepted, within);
        arrival.report(test);
        arrival.assert_nothing_missing(c);
        assert!(arrival.garbage.is_empty(), "rows that are no beacon of the test in {table}: {:?}", arrival.garbage);
    }
    report_sink(test, c);
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// The harness itself: a private server that stops, restarts and keeps its data; a collector
/// killed and restarted on the same config; everything removed afterwards.
#[test]
fn private_server_and_collector_restart() {
    let started = Instant::now();
    let server = Server::private("harness");
    let dir = server.dir().to_owned();
    assert!(dir.join("data").is_dir() && server.answers());
    {
        let install = Install::on(&server, "harness");
        let mut c = install.collector(SITE);
        wait_ready(&c);
        let tally = Load::send_all(c.addr, 0..20, 2);
        assert_eq!(tally.accepted().len(), 20);
        assert_eq!(install.wait_for_count(&format!("SELECT count() FROM {}", install.audience()), 20), 20);

        server.stop();
        assert!(!server.answers());
        server.start();
        assert_eq!(install.count(&install.audience()), 20, "the data directory is kept");

        let pid = c.pid();
        assert!(!c.kill().success());
        assert!(c.rss_bytes().is_none(), "the killed process is gone");
        c.restart();
        assert_ne!(c.pid(), pid);
        wait_ready(&c);
        assert!(c.rss_bytes().is_some_and(|b| b > 0));
        let again = Load::send_all(c.addr, 20..40, 2);
        assert_eq!(again.accepted().len(), 20);
        assert_eq!(install.wait_for_count(&format!("SELECT count() FROM {}", install.audience()), 40), 40);
        assert!(c.terminate().success());
    }
    drop(server);
    assert!(!dir.exists(), "{} is removed with the server", dir.display());
    eprintln!("[harness] done in {}", secs(started.elapsed()));
}

/// ClickHouse stops for 15 s under steady load: every beacon answered 202 before, during and
/// after the outage is stored once ClickHouse is back.
#[test]
fn clickhouse_outage_loses_nothing() {
    let test = "outage";
    let started = Instant::now();
    let server = Server::private(test);
    let install = Install::on(&server, test);
    let c = install.collector(SITE);
    wait_ready(&c);

    let load = Load::start(c.addr, 300.0, 4);
    std::thread::sleep(Duration::from_secs(3));
    server.stop();
    let down = load.elapsed();
    eprintln!("[{test}] ClickHouse stopped at {}", secs(down));
    std::thread::sleep(Duration::from_secs(15));
    let up = load.elapsed();
    server.start();
    eprintln!("[{test}] ClickHouse started again at {} (answering at {})", secs(up), secs(load.elapsed()));
    std::thread::sleep(Duration::from_secs(3));
    let tally = load.finish();
    tally.report(test);

    tally.assert_refusals_are_503_with_retry_after(&[]);
    assert!(tally.unanswered().is_empty(), "the collector stopped answering: {:?}", tally.unanswered().first());
    let during = tally.accepted_between(down, up);
    eprintln!("[{test}] accepted while ClickHouse was down: {during}");
    assert!(during > 0, "nothing was accepted while ClickHouse was down: the test proves nothing");
    assert_all_arrive(test, &install, &c, &tally.accepted(), Duration::from_secs(60));
    eprintln!("[{test}] done in {}", secs(started.elapsed()));
}

/// With `durability = "fsync"`, a 202 means the beacon is on disk: SIGKILL mid-load and a
/// restart on the same spool lose none of them.
#[test]
fn sigkill_in_fsync_mode_loses_nothing() {
    let test = "sigkill";
    let started = Instant::now();
    let server = Server::private(test);
    let install = Install::on(&server, test);
    let mut c = install.collector(&format!("[sink]\nflush_interval_ms = 200\ndurability = \"fsync\"\n{SITE}"));
    wait_ready(&c);

    let load = Load::start(c.addr, 300.0, 4);
    std::thread::sleep(Duration::from_secs(3));
    let killed = c.kill();
    let at = load.elapsed();
    eprintln!("[{test}] collector SIGKILLed at {} ({killed})", secs(at));
    c.restart();
    eprintln!("[{test}] collector answering again at {}", secs(load.elapsed()));
    std::thread::sleep(Duration::from_secs(3));
    let tally = load.finish();
    tally.report(test);

    tally.assert_refusals_are_503_with_retry_after(&[]);
    let accepted = tally.accepted();
    assert!(tally.accepted_between(Duration::ZERO, at) > 0, "nothing was accepted before the kill");
    assert!(tally.accepted_between(at, tally.elapsed) > 0, "nothing was accepted after the restart");
    assert_all_arrive(test, &install, &c, &accepted, Duration::from_secs(60));
    eprintln!("[{test}] done in {}", secs(started.elapsed()));
}

/// ClickHouse down and small caps: the spool fills, answers turn 503 (spool_full or
/// queue_full, with Retry-After), memory and the spool stay bounded, and once ClickHouse is
/// back every accepted beacon arrives.
#[test]
fn spool_cap_gives_503_then_everything_arrives() {
    let test = "spoolcap";
    let started = Instant::now();
    const MAX_BYTES: f64 = 262_144.0;
    const SEGMENT_BYTES: f64 = 65_536.0;
    const RSS_LIMIT: u64 = 300 << 20;
    let server = Server::private(test);
    let install = Install::on(&server, test);
    let c = install.collector(&format!(
        "[sink]\nflush_interval_ms = 100\nqueue_capacity = 100\nmax_batch_rows = 50\n\
         [spool]\nmax_bytes = {MAX_BYTES}\nsegment_bytes = {SEGMENT_BYTES}\n{SITE}"
    ));
    wait_ready(&c);
    server.stop();

    // Spool size and memory, sampled while the load runs.
    let samples: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (samples, sampling, addr, pid) = (samples.clone(), sampling.clone(), c.addr, c.pid());
        std::thread::spawn(move || {
            let agent = e2e::http();
            while sampling.load(Ordering::Relaxed) {
                let metrics = agent
                    .get(&format!("http://{addr}/metrics"))
                    .call()
                    .ok()
                    .and_then(|mut r| r.body_mut().read_to_string().ok())
                    .unwrap_or_default();
                let spool = metric_sum(&metrics, "webstats_collector_spool_bytes", &[]);
                let rss = rss_of(pid).unwrap_or(0);
                samples.lock().unwrap().push((spool, rss));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let load = Load::start(c.addr, f64::INFINITY, 4);
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.refused() < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // A little longer at the cap.
    std::thread::sleep(Duration::from_secs(1));
    let tally = load.finish();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    tally.report(test);

    let refused = tally.refused();
    assert!(!refused.is_empty(), "no 503 within 60 s with ClickHouse down and a 256 KiB spool");
    tally.assert_refusals_are_503_with_retry_after(&["spool_full", "queue_full"]);
    assert!(tally.unanswered().is_empty(), "the collector stopped answering: {:?}", tally.unanswered().first());
    let samples = samples.lock().unwrap().clone();
    let max_spool = samples.iter().map(|s| s.0).fold(0.0, f64::max);
    let max_rss = samples.iter().map(|s| s.1).max().unwrap_or(0).max(c.rss_bytes().unwrap_or(0));
    eprintln!(
        "[{test}] {} samples: spool bytes at most {max_spool} (cap {MAX_BYTES} + segment {SEGMENT_BYTES}), RSS at most {:.1} MiB",
        samples.len(),
        max_rss as f64 / 1048576.0
    );
    assert!(max_rss > 0 && max_rss < RSS_LIMIT, "RSS {max_rss} bytes, limit {RSS_LIMIT}");
    assert!(max_spool > 0.0, "webstats_collector_spool_bytes never rose: is the spool in use?");
    assert!(max_spool <= MAX_BYTES + SEGMENT_BYTES, "the spool grew to {max_spool} bytes");

    server.start();
    eprintln!("[{test}] ClickHouse back at {}", secs(started.elapsed()));
    assert_all_arrive(test, &install, &c, &tally.accepted(), Duration::from_secs(60));
    eprintln!("[{test}] done in {}", secs(started.elapsed()));
}

/// A corrupted spool segment: its bad records are skipped and counted, the other segments'
/// beacons arrive, and nothing made of garbage does.
#[test]
fn corrupt_spool_segment_is_skipped_and_counted() {
    let test = "corrupt";
    let started = Instant::now();
    const BEACONS: u64 = 3000;
    let server = Server::private(test);
    let install = Install::on(&server, test);
    let mut c = install.collector(&format!("[sink]\nflush_interval_ms = 200\n[spool]\nsegment_bytes = 65536\n{SITE}"));
    wait_ready(&c);
    server.stop();

    let tally = Load::send_all(c.addr, 0..BEACONS, 4);
    tally.report(test);
    assert_eq!(tally.accepted().len() as u64, BEACONS, "with ClickHouse down every beacon goes to the spool");
    let status = c.terminate();
    assert!(status.success(), "SIGTERM with ClickHouse down: exit {status}; log tail:\n{}", log_tail(&c, 40));

    let segments = c.spool_segments();
    assert!(!segments.is_empty(), "no *.seg file under {} after a graceful stop", c.spool_dir.display());
    scan_spool_for_addresses(test, &c);
    let contents: Vec<Vec<u8>> = segments.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let ids: Vec<BTreeSet<u64>> = contents.iter().map(|bytes| ids_in(bytes)).collect();
    for (path, (bytes, ids)) in segments.iter().zip(contents.iter().zip(&ids)) {
        eprintln!("[{test}] {}: {} bytes, {} beacon pages", path.display(), bytes.len(), ids.len());
    }
    // The victim: a segment in the middle of the replay order (`<table>-<seq>.seg`), with data.
    let seq = |p: &PathBuf| file_name(p).rsplit('-').next().and_then(|s| s.split('.').next()?.parse::<u64>().ok());
    let mut candidates: Vec<usize> = (0..segments.len()).filter(|&i| contents[i].iter().any(|&b| b != 0)).collect();
    candidates.sort_by_key(|&i| (seq(&segments[i]), i));
    let victim = candidates[candidates.len() / 2];
    let offset = corrupt(&segments[victim], &contents[victim]);
    eprintln!("[{test}] corrupted {} at byte {offset}", segments[victim].display());

    server.start();
    c.restart();
    c.wait_until_for(
        Duration::from_secs(60),
        |c| c.metric_sum("webstats_collector_spool_corrupt_records_total", &[]) > 0.0,
        "webstats_collector_spool_corrupt_records_total > 0",
    );
    let corrupt_records = c.metric_sum("webstats_collector_spool_corrupt_records_total", &[]);
    eprintln!("[{test}] corrupt records counted: {corrupt_records}");
    assert!(corrupt_records > 0.0);

    assert!(ids.iter().any(|s| !s.is_empty()), "no beacon page found in the spool's segments: not plain RowBinary?");
    // Precise: every page in an intact segment arrives, in that segment's table when the
    // file name tells it.
    for table in ["audience", "troubleshooting"] {
        let full = format!("{}_{table}.events", install.prefix);
        let other = if table == "audience" { "troubleshooting" } else { "audience" };
        let expected: Vec<u64> = (0..segments.len())
            .filter(|&i| i != victim)
            .filter(|&i| !file_name(&segments[i]).contains(other))
            .flat_map(|i| ids[i].iter().copied())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let arrival = wait_arrival(&install, &full, &expected, Duration::from_secs(60));
        arrival.report(test);
        eprintln!(
            "[{test}] {full}: {} of {BEACONS} beacons expected (in intact segments), {} stored in all",
            expected.len(),
            expected.len() - arrival.missing.len() + arrival.unacknowledged
        );
        arrival.assert_nothing_missing(&c);
        assert!(arrival.garbage.is_empty(), "garbage rows in {full}: {:?}", arrival.garbage);
    }
    report_sink(test, &c);
    eprintln!("[{test}] done in {}", secs(started.elapsed()));
}

/// The spool holds pseudonymised rows only: no client address of the load is in any file of
/// it, as text or in its 16-byte form. (Not the 4-byte forms: among megabytes of hashes they
/// match by chance. Not 198.51.100.0: the stored network prefix `198.51.100.0/24` holds it.)
/// A page path is the positive control: the scan does see into the segments.
fn scan_spool_for_addresses(test: &str, c: &Collector) {
    let files = scan::files_under(&c.spool_dir);
    let needles: Vec<scan::Needle> = (1..250)
        .flat_map(|i| scan::ip_needles(IpAddr::from([198, 51, 100, i])))
        .filter(|needle| needle.bytes.len() != 4)
        .collect();
    let found = scan::find(&files, &needles);
    assert!(found.is_empty(), "client addresses in the spool: {:?}", &found[..found.len().min(5)]);
    let control = scan::find(&files, &[scan::text_needle("a beacon's page", &page(1))]);
    assert!(!control.is_empty(), "the scan found no page path in {} files of the spool", files.len());
    eprintln!("[{test}] privacy scan: {} spool files, {} addresses, none found", files.len(), 249);
}

/// A batch ClickHouse refuses for its data goes to the dead-letter folder with its reason and
/// is counted; the other table's rows keep flowing.
#[test]
fn permanent_error_goes_to_dead_letter() {
    let test = "deadletter";
    let started = Instant::now();
    let server = Server::private(test);
    let install = Install::on(&server, test);
    let c = install.collector(SITE);
    wait_ready(&c);

    // Every audience batch refused for its data.
    install.refuse_ingest("audience");

    let first = Load::send_all(c.addr, 0..200, 2);
    first.report(test);
    assert_eq!(first.accepted().len(), 200);
    // Every audience row of the 200 beacons is a dead letter, and none is discarded.
    let dead_letter = c.spool_dir.join("dead-letter");
    let dead_rows = |c: &Collector| c.metric_sum("webstats_collector_dead_letter_rows_total", &[("table", "audience")]);
    c.wait_until_for(
        Duration::from_secs(60),
        |c| dead_rows(c) >= 200.0 && !e2e::scan::files_under(&dead_letter).is_empty(),
        "200 dead-letter rows of the audience table, and their files",
    );
    assert_eq!(dead_rows(&c), 200.0);
    assert_eq!(c.metric_sum("webstats_collector_sink_rows_total", &[("outcome", "discarded")]), 0.0);
    let files = e2e::scan::files_under(&dead_letter);
    let reason = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read(f).ok()?;
            let text = String::from_utf8_lossy(&text);
            let named = file_name(f).to_ascii_lowercase().contains("reason");
            (named && !text.trim().is_empty() || text.contains("Code: 33") || text.contains("Cannot read all data"))
                .then(|| text.chars().take(300).collect::<String>())
        })
        .next();
    eprintln!("[{test}] reason: {reason:?}");
    assert!(reason.is_some(), "no reason file or text in {files:?}");

    // The rest keeps flowing: troubleshooting rows of these and of later beacons arrive.
    let second = Load::send_all(c.addr, 200..400, 2);
    assert_eq!(second.accepted().len(), 200);
    let mut accepted = first.accepted();
    accepted.extend(second.accepted());
    let arrival = wait_arrival(&install, &install.troubleshooting(), &accepted, Duration::from_secs(60));
    arrival.report(test);
    arrival.assert_nothing_missing(&c);
    c.wait_until(|c| dead_rows(c) >= 400.0, "the second 200 audience rows in the dead letters");
    assert_eq!(dead_rows(&c), 400.0);
    report_sink(test, &c);
    eprintln!("[{test}] done in {}", secs(started.elapsed()));
}

// ---------------------------------------------------------------------------------------------
// Helpers of the tests above.

/// Resident memory of a process in bytes.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The beacons whose page appears in plain bytes (RowBinary keeps strings as they are).
fn ids_in(bytes: &[u8]) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = bytes[i..].windows(3).position(|w| w == b"/p/") {
        let start = i + at;
        let end =
            (start + 3..bytes.len()).find(|&j| !(bytes[j].is_ascii_digit() || bytes[j] == b'-')).unwrap_or(bytes.len());
        if let Some(n) = std::str::from_utf8(&bytes[start..end]).ok().and_then(page_id) {
            ids.insert(n);
        }
        i = start + 3;
    }
    ids
}

/// Overwrites 64 bytes in the middle of a segment's data (around a page in it, if any) with
/// garbage; returns where.
fn corrupt(path: &PathBuf, bytes: &[u8]) -> usize {
    let data_end = bytes.iter().rposition(|&b| b != 0).map_or(bytes.len(), |i| i + 1);
    let middle = data_end / 2;
    let near_page = (middle..data_end).find(|&i| bytes[i..].starts_with(b"/p/"));
    let offset = near_page.map_or(middle, |i| i.saturating_sub(16)).min(bytes.len().saturating_sub(64));
    let mut corrupted = bytes.to_vec();
    let mut x: u32 = 0x9E37_79B9;
    for b in corrupted.iter_mut().skip(offset).take(64) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x & 0xFF) as u8;
    }
    std::fs::write(path, corrupted).unwrap();
    offset
}

#[test]
fn pages_round_trip() {
    for n in [0, 7, 999, 1000, 1001, 12_345, 999_999] {
        assert_eq!(page_id(&page(n)), Some(n), "{}", page(n));
    }
    assert_eq!(page_id("/p/01-000"), None);
    assert_eq!(page_id("/p/1-00"), None);
    assert_eq!(page_id("/p/:id"), None);
    let bytes = [b"\x09/p/12-345\x00\x07/p/0-001".as_slice(), b"junk/p/x"].concat();
    assert_eq!(ids_in(&bytes), BTreeSet::from([12_345, 1]));
}
