//! Limits that protect the service from one client: the per-network-prefix rate limit and
//! the connection limit, against the real collector (docs/reliability.md, "Limits against hostile or broken clients").

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use e2e::{Collector, Install, RawEnd};

const SITE: &str = "[[sites]]\nid = \"shop\"\nallowed_hosts = [\"shop.example.ru\"]\n";
const BEACON: &str = r#"{"site":"shop","url":"https://shop.example.ru/limits"}"#;

#[test]
fn a_flooding_network_gets_429_and_its_neighbours_do_not() {
    let install = Install::new("ratelimit");
    let c = install.collector(&format!("{SITE}[rate_limit]\nbeacons_per_second = 1\nburst = 5\n"));
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
    // The collector trusts 127.0.0.1, so X-Forwarded-For is the client address.
    let from = |ip: &str| c.beacon(BEACON, &[("x-forwarded-for", ip)]);

    let statuses: Vec<u16> = (1..=8).map(|i| from(&format!("203.0.113.{i}")).status).collect();
    assert_eq!(&statuses[..5], &[202; 5], "the burst is accepted: {statuses:?}");
    assert!(statuses[5..].iter().all(|&s| s == 429), "past the burst, the /24 is limited: {statuses:?}");

    let limited = from("203.0.113.200");
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.json()["reason"], "rate_limited");

    // Another /24 and an IPv6 /48 have budgets of their own.
    assert_eq!(from("198.51.100.7").status, 202);
    assert_eq!(from("2001:db8:5::1").status, 202);
    assert!(c.metric("webstats_collector_beacons_rejected_total{reason=\"rate_limited\"}") >= 4.0);

    // The budget refills: one beacon per second.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(from("203.0.113.9").status, 202);
    // Only beacons are limited: health and metrics still answer the flooding network.
    assert_eq!(c.request("GET", "/healthz", &[("x-forwarded-for", "203.0.113.1")], None).status, 200);
}

#[test]
fn connections_over_the_limit_get_503_and_are_closed() {
    let install = Install::new("connlimit");
    let c = install.collector_with_server("max_connections = 2\n", SITE, &[]);
    // Two idle connections take both slots (their headers never come within this test). A
    // slot may still be held by the harness's last /healthz connection until the collector
    // sees it close, and a connection refused meanwhile is answered 503 at once: so a
    // connection counts as held only when nothing comes back on it.
    let mut idle: Vec<TcpStream> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while idle.len() < 2 {
        assert!(Instant::now() < deadline, "no two connections could be held");
        let mut stream = TcpStream::connect(c.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let held = matches!(
            stream.read(&mut [0u8; 1]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        );
        if held {
            idle.push(stream);
        }
    }

    let refused = c.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(refused.status(), Some(503), "{refused}");
    assert_eq!(refused.header("retry-after"), Some("1"), "{refused}");
    assert_eq!(refused.json()["reason"], "too_many_connections", "{refused}");
    assert_eq!(refused.end, RawEnd::Closed, "{refused}");

    // A slot frees as soon as a connection closes.
    drop(idle);
    c.wait_until(|c| c.try_get("/healthz").is_some_and(|r| r.0 == 200), "/healthz once the idle connections closed");
    assert!(c.metric("webstats_collector_http_connections_refused_total") >= 1.0);

    // The open-connections gauge counts client connections, up and down again. The scrape's
    // own connection is one of them.
    let connections = |c: &Collector| c.metric("webstats_collector_http_connections");
    c.wait_until(|c| connections(c) == 1.0, "only the scrape's own connection to be open");
    let mut held = TcpStream::connect(c.addr).unwrap();
    held.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    c.wait_until(|c| connections(c) == 2.0, "the held connection to be counted");
    drop(held);
    c.wait_until(|c| connections(c) == 1.0, "the closed connection to be uncounted");
}
