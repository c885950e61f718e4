//! The public HTTP contract (docs/http-api.md) against the real collector: bad input gets the
//! documented status and a JSON reason and is counted; the GIF, gzip, snippet and CORS paths;
//! readiness; graceful shutdown.

use std::io::Write;
use std::time::Duration;

use e2e::{Collector, Install, sql_u64, wait_for_count};

const SITE: &str = "[[sites]]\nid = \"shop\"\nallowed_hosts = [\"shop.example.ru\", \"*.example.com\"]\n";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

fn start(install: &Install) -> Collector {
    let collector = install.collector(SITE);
    collector.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
    collector
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn bad_input_gets_its_status_a_json_reason_and_is_counted() {
    let install = Install::new("badinput");
    let c = start(&install);
    let text = [("content-type", "text/plain")];
    let big = format!(r#"{{"site":"shop","url":"https://shop.example.ru/","name":"{}"}}"#, "x".repeat(17 * 1024));
    let bomb = gzip(&vec![b' '; 1 << 20]);
    // (what, method, headers, body, status, reason, field)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "unknown site",
            "POST",
            text.to_vec(),
            br#"{"site":"nope","url":"https://shop.example.ru/"}"#.to_vec(),
            403,
            "unknown_site",
            "",
        ),
        ("missing url", "POST", text.to_vec(), br#"{"site":"shop"}"#.to_vec(), 400, "invalid_beacon", "url"),
        ("invalid JSON", "POST", text.to_vec(), br#"{"site":"shop","url":"#.to_vec(), 400, "invalid_beacon", ""),
        ("invalid UTF-8", "POST", text.to_vec(), b"{\"site\":\"sh\xffop\"}".to_vec(), 400, "invalid_beacon", ""),
        ("body over 16 KiB", "POST", text.to_vec(), big.into_bytes(), 413, "payload_too_large", ""),
        (
            "gzip bomb",
            "POST",
            vec![("content-type", "text/plain"), ("content-encoding", "gzip")],
            bomb,
            413,
            "payload_too_large",
            "",
        ),
        (
            "broken gzip",
            "POST",
            vec![("content-type", "text/plain"), ("content-encoding", "gzip")],
            b"not gzip".to_vec(),
            400,
            "unreadable_body",
            "",
        ),
        ("wrong method", "GET", vec![], vec![], 405, "method_not_allowed", ""),
        ("PUT", "PUT", text.to_vec(), b"{}".to_vec(), 405, "method_not_allowed", ""),
        (
            "form body",
            "POST",
            vec![("content-type", "application/x-www-form-urlencoded")],
            b"site=shop".to_vec(),
            415,
            "unsupported_media_type",
            "",
        ),
        (
            "foreign origin",
            "POST",
            vec![("content-type", "text/plain"), ("origin", "https://evil.example.org")],
            br#"{"site":"shop","url":"https://shop.example.ru/"}"#.to_vec(),
            403,
            "origin_not_allowed",
            "",
        ),
        (
            "foreign page",
            "POST",
            text.to_vec(),
            br#"{"site":"shop","url":"https://evil.example.org/"}"#.to_vec(),
            403,
            "host_not_allowed",
            "",
        ),
        (
            "event without name",
            "POST",
            text.to_vec(),
            br#"{"site":"shop","type":"event","url":"https://shop.example.ru/"}"#.to_vec(),
            400,
            "invalid_beacon",
            "name",
        ),
        (
            "deep nesting",
            "POST",
            text.to_vec(),
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
            400,
            "invalid_beacon",
            "",
        ),
    ];
    for (what, method, headers, body, status, reason, field) in &cases {
        let body = (!body.is_empty() || *method != "GET").then_some(&body[..]);
        let reply = c.request(method, "/api/event", headers, body);
        assert_eq!(reply.status, *status, "{what}: {}", reply.text());
        let json = reply.json();
        assert_eq!(json["reason"], *reason, "{what}: {json}");
        assert_eq!(json["field"], *field, "{what}: {json}");
        assert!(!json["error"].as_str().unwrap().is_empty(), "{what}: the error says what is wrong");
        assert_eq!(reply.header("content-type"), Some("application/json"), "{what}");
        if *status == 405 {
            assert!(reply.header("allow").is_some(), "{what}: 405 names the allowed methods");
        }
    }

    // Every refusal is counted by reason; the service is healthy and stored nothing.
    for (reason, n) in
        [("unknown_site", 1.0), ("invalid_beacon", 5.0), ("payload_too_large", 2.0), ("method_not_allowed", 2.0)]
    {
        assert_eq!(
            c.metric(&format!("webstats_collector_beacons_rejected_total{{reason=\"{reason}\"}}")),
            n,
            "{reason}"
        );
    }
    assert_eq!(c.get("/healthz").0, 200);
    let ok = c.beacon(r#"{"site":"shop","url":"https://shop.example.ru/after"}"#, &[("user-agent", UA)]);
    assert_eq!(ok.status, 202, "a good beacon after bad ones: {}", ok.text());
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {}", install.audience()), 1), 1);
    assert!(!c.log_text().contains("panicked"), "no panic on bad input");
}

#[test]
fn gif_gzip_snippet_and_cors_follow_the_contract() {
    let install = Install::new("contract");
    let c = start(&install);

    // GET /api/event.gif: a 1×1 GIF, not cached, and a row.
    let gif = c.request(
        "GET",
        "/api/event.gif?site=shop&url=https%3A%2F%2Fshop.example.ru%2Fnoscript&sw=1280",
        &[("user-agent", UA)],
        None,
    );
    assert_eq!(gif.status, 200, "{}", gif.text());
    assert_eq!(gif.header("content-type"), Some("image/gif"));
    assert_eq!(gif.header("cache-control"), Some("no-store"));
    assert!(gif.body.starts_with(b"GIF89a"));

    // A gzip body, and application/json, are accepted.
    let body = gzip(br#"{"site":"shop","url":"https://lk.example.com/zipped","type":"event","name":"pay"}"#);
    let zipped = c.request(
        "POST",
        "/api/event",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("user-agent", UA),
            ("origin", "https://lk.example.com"),
        ],
        Some(&body),
    );
    assert_eq!(zipped.status, 202, "{}", zipped.text());
    let audience = install.audience();
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {audience}"), 2), 2);
    assert_eq!(sql_u64(&format!("SELECT count() FROM {audience} WHERE path = '/noscript' AND screen_width = 1280")), 1);
    assert_eq!(sql_u64(&format!("SELECT count() FROM {audience} WHERE host = 'lk.example.com' AND name = 'pay'")), 1);

    // The snippet: ETag, cache lifetime, gzip when accepted, 304 when unchanged.
    let plain = c.request("GET", "/script.js", &[], None);
    assert_eq!(plain.status, 200);
    assert!(plain.header("content-type").unwrap().starts_with("application/javascript"));
    assert!(plain.header("cache-control").unwrap().contains("max-age="));
    assert!(plain.text().contains("sendBeacon"));
    let etag = plain.header("etag").expect("an ETag").to_owned();
    let zipped = c.request("GET", "/script.js", &[("accept-encoding", "gzip, br")], None);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert!(zipped.body.len() < plain.body.len());
    let again = c.request("GET", "/script.js", &[("if-none-match", etag.as_str())], None);
    assert_eq!(again.status, 304);

    // CORS: preflight answered for allowed origins only.
    let preflight = c.request(
        "OPTIONS",
        "/api/event",
        &[("origin", "https://shop.example.ru"), ("access-control-request-method", "POST")],
        None,
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("https://shop.example.ru"));
    assert!(preflight.header("access-control-allow-methods").unwrap().contains("POST"));
    let foreign = c.request("OPTIONS", "/api/event", &[("origin", "https://evil.example.org")], None);
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.header("access-control-allow-origin"), None);

    // Metrics: Prometheus text with conventional names.
    let (status, metrics) = c.get("/metrics");
    assert_eq!(status, 200);
    for name in [
        "webstats_collector_http_requests_total",
        "webstats_collector_http_request_duration_seconds_bucket",
        "webstats_collector_sink_rows_total",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    assert_eq!(c.metric_sum("webstats_collector_beacons_accepted_total", &[("type", "pageview")]), 1.0);
    assert_eq!(c.metric_sum("webstats_collector_beacons_accepted_total", &[("type", "event")]), 1.0);
}

#[test]
fn without_a_salt_the_collector_is_not_ready_and_refuses_beacons() {
    let install = Install::new("nosalt");
    e2e::sql(&format!("TRUNCATE TABLE {}_meta.salts", install.prefix));
    let c = install.collector(SITE);
    let (status, reason) = c.get("/readyz");
    assert_eq!((status, reason.as_str()), (503, "no salt is loaded for the current period\n"));
    let refused = c.beacon(r#"{"site":"shop","url":"https://shop.example.ru/"}"#, &[]);
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["reason"], "no_salt");
    assert!(refused.header("retry-after").is_some());

    // The aggregator creates the salts; the collector picks them up at its next refresh.
    let out = install.aggregator(&["salts"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "readiness after salts appear");
    assert_eq!(c.beacon(r#"{"site":"shop","url":"https://shop.example.ru/"}"#, &[]).status, 202);
    assert_eq!(c.metric("webstats_collector_salt_periods_loaded"), 2.0);
}

#[test]
fn sigterm_flushes_buffered_rows_and_exits_zero() {
    let install = Install::new("shutdown");
    // A flush interval far beyond the test: only shutdown can insert these rows.
    let c = install.collector_with(&format!("[sink]\nflush_interval_ms = 600000\n{SITE}"), &[]);
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
    for i in 0..50 {
        let reply =
            c.beacon(&format!(r#"{{"site":"shop","url":"https://shop.example.ru/p/{i}"}}"#), &[("user-agent", UA)]);
        assert_eq!(reply.status, 202);
    }
    // Past the default flush interval (1 s): only the configured one keeps the rows back now.
    std::thread::sleep(Duration::from_millis(1500));
    let audience = install.audience();
    assert_eq!(sql_u64(&format!("SELECT count() FROM {audience}")), 0, "nothing is flushed before shutdown");
    let log = c.log.clone();
    let status = c.stop();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(sql_u64(&format!("SELECT count() FROM {audience}")), 50);
    assert!(std::fs::read_to_string(log).unwrap().contains("collector stopped cleanly"));
}

#[test]
fn do_not_track_and_global_privacy_control_are_honoured_per_site() {
    let install = Install::new("dnt");
    let c = install.collector(
        "[[sites]]\nid = \"open\"\nallowed_hosts = [\"open.example.ru\"]\n\
         [[sites]]\nid = \"strict\"\nallowed_hosts = [\"strict.example.ru\"]\ndo_not_track = \"drop\"\n",
    );
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
    let send = |site: &str, path: &str, signal: Option<(&str, &str)>| {
        let body = format!(r#"{{"site":"{site}","url":"https://{site}.example.ru{path}"}}"#);
        let mut headers = vec![("user-agent", UA)];
        headers.extend(signal);
        c.beacon(&body, &headers).status
    };
    assert_eq!(send("open", "/tracked", None), 202);
    assert_eq!(send("open", "/dnt", Some(("dnt", "1"))), 202);
    assert_eq!(send("open", "/gpc", Some(("sec-gpc", "1"))), 202);
    assert_eq!(send("strict", "/gpc", Some(("sec-gpc", "1"))), 202);
    assert_eq!(send("strict", "/tracked", None), 202);

    let (audience, trouble) = (install.audience(), install.troubleshooting());
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {audience}"), 4), 4);
    // Each table's rows are a batch and an insert of their own: wait for these too.
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {trouble}"), 2), 2);
    // "anonymous" (the default): counted with no visitor id, no cookie id, no troubleshooting row.
    let anonymous = format!("SELECT count() FROM {audience} WHERE site = 'open' AND visitor_id = 0 AND cookie_id = 0");
    assert_eq!(sql_u64(&anonymous), 2);
    assert_eq!(sql_u64(&format!("SELECT count() FROM {trouble} WHERE path IN ('/dnt', '/gpc')")), 0);
    // "drop": nothing stored, counted as dropped.
    assert_eq!(sql_u64(&format!("SELECT count() FROM {audience} WHERE site = 'strict' AND path = '/gpc'")), 0);
    assert_eq!(c.metric_sum("webstats_collector_beacons_dropped_total", &[("reason", "do_not_track")]), 1.0);
    // Without the signal, both sites track as usual.
    assert_eq!(sql_u64(&format!("SELECT count() FROM {audience} WHERE path = '/tracked' AND visitor_id != 0")), 2);
    assert_eq!(sql_u64(&format!("SELECT count() FROM {trouble} WHERE path = '/tracked'")), 2);
}
