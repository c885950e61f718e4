//! Fault injection: ClickHouse stopped under load, the collector SIGKILLed, the spool full,
//! a spool segment corrupted, a batch ClickHouse refuses for its data, one of two collectors
//! behind a load balancer stopped. Each test that stops ClickHouse runs on a server of its own
//! (so they run in parallel and never disturb the shared one), over loopback, with every wait
//! bounded. The load and the counting are `e2e::load`'s.
//!
//! The invariant checked everywhere: a beacon answered 202 is in ClickHouse afterwards.
//! Duplicates are allowed on one server (18.16 has no insert deduplication token) and
//! reported; refusals are allowed if they are 503 with `Retry-After`.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use e2e::{
    Collector, Install, Server,
    load::{self, Load, SITE, assert_all_arrive, log_tail, page, page_id, report_sink, secs, wait_arrival, wait_ready},
    metric_sum, scan,
};

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

/// `fsync` mode measures its group commits: every beacon answered 202 was in exactly one,
/// and with 4 connections no group holds more than 4.
#[test]
fn fsync_mode_reports_its_group_commits() {
    let test = "commits";
    let install = Install::new(test);
    let c = install.collector(&format!("[sink]\ndurability = \"fsync\"\n{SITE}"));
    wait_ready(&c);
    let tally = Load::send_all(c.addr, 0..200, 4);
    assert_eq!(tally.accepted().len(), 200);
    let metric = |name: &str| c.metric_sum(&format!("webstats_collector_spool_commit_{name}"), &[]);
    let commits = metric("beacons_count");
    assert_eq!(metric("beacons_sum"), 200.0, "each accepted beacon in one commit");
    let at_most_4 = c.metric_sum("webstats_collector_spool_commit_beacons_bucket", &[("le", "4")]);
    assert_eq!(at_most_4, commits, "a group of more than 4 beacons from 4 connections");
    assert_eq!(metric("duration_seconds_count"), commits);
    assert!(metric("duration_seconds_sum") > 0.0);
    assert_all_arrive(test, &install, &c, &tally.accepted(), Duration::from_secs(30));
}

/// One batch many times the slice an insert compresses and sends at a time (256 KiB,
/// `sink::insert`) arrives whole: rows that straddle two slices are neither lost nor garbled.
#[test]
fn a_batch_of_many_send_slices_arrives_whole() {
    let test = "bigbatch";
    const BEACONS: u64 = 4_000;
    let install = Install::new(test);
    // Each table's rows go in one batch, inserted when it is full rather than on a timer:
    // about 0.5 MiB of audience rows and 0.9 MiB of troubleshooting rows.
    let c = install.collector(&format!("[sink]\nmax_batch_rows = {BEACONS}\nflush_interval_ms = 600000\n{SITE}"));
    wait_ready(&c);
    let tally = Load::send_all(c.addr, 0..BEACONS, 4);
    assert_eq!(tally.accepted().len() as u64, BEACONS);
    assert_all_arrive(test, &install, &c, &tally.accepted(), Duration::from_secs(60));
    let inserts = |outcome| c.metric_sum("webstats_collector_sink_inserts_total", &[("outcome", outcome)]);
    assert_eq!((inserts("ok"), inserts("transient_error")), (2.0, 0.0), "one insert per table");
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

/// Two collectors, each with its own spool, behind Debian's HAProxy with `/readyz` as its
/// health check and `shutdown_drain_ms` longer than the check takes to notice (docs/
/// operations.md, "Scaling out"): one is stopped (SIGTERM) mid-load and started again. While
/// it drains, its `/readyz` says so and it still takes beacons; every answer through the
/// balancer is 202, and every beacon is stored.
#[test]
fn a_collector_stopped_behind_the_load_balancer_loses_nothing() {
    let test = "balancer";
    let started = Instant::now();
    let install = Install::new(test);
    let drain = "shutdown_drain_ms = 1500";
    // The beacon sent straight to the draining collector: beyond the load's numbers.
    const DRAINING: u64 = 99_000;
    let mut stopped = install.collector_with_server(drain, &format!("[sink]\nflush_interval_ms = 200\n{SITE}"), &[]);
    let other = install.collector_with_server(drain, &format!("[sink]\nflush_interval_ms = 200\n{SITE}"), &[]);
    wait_ready(&stopped);
    wait_ready(&other);
    let balancer = e2e::balancer::Balancer::start(test, &[stopped.addr, other.addr]);

    let load = Load::start(balancer.addr, 300.0, 4);
    std::thread::sleep(Duration::from_secs(3));
    stopped.signal_terminate();
    let at = load.elapsed();
    stopped.wait_until(
        |c| c.try_get("/readyz").is_some_and(|(status, body)| status == 503 && body.contains("shutting")),
        "/readyz to answer 503 while draining",
    );
    let reply = stopped.beacon(&load::beacon_body(DRAINING), &[("user-agent", load::UA)]);
    assert_eq!(reply.status, 202, "a draining collector still takes beacons: {}", reply.text());
    let status = stopped.terminate();
    assert!(status.success(), "the stopped collector lost rows ({status}): {}", log_tail(&stopped, 20));
    let before = stopped.log_text();
    eprintln!("[{test}] collector {} stopped at {}", stopped.addr, secs(at));
    std::thread::sleep(Duration::from_secs(3));
    stopped.restart();
    wait_ready(&stopped);
    let back = load.elapsed();
    eprintln!("[{test}] collector {} ready again at {}", stopped.addr, secs(back));
    std::thread::sleep(Duration::from_secs(3));
    let tally = load.finish();
    tally.report(test);

    assert_eq!(tally.accepted().len(), tally.answers.len(), "every answer through the balancer is 202");
    assert!(tally.accepted_between(at, back) > 0, "nothing was accepted while one collector was stopped");
    // Both collectors took beacons before the stop, and the restarted one after it.
    assert!(before.contains("batch inserted"), "the stopped collector had inserted nothing before its stop");
    let inserted = |c: &Collector| c.metric_sum("webstats_collector_sink_rows_total", &[("outcome", "inserted")]);
    assert!(inserted(&other) > 0.0, "the other collector inserted nothing");
    stopped.wait_until(|c| inserted(c) > 0.0, "the restarted collector to insert beacons again");
    let mut accepted = tally.accepted();
    accepted.push(DRAINING);
    assert_all_arrive(test, &install, &other, &accepted, Duration::from_secs(60));
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
