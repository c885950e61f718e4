//! Hostile input against the real collector: a corpus of malformed, oversized and slow
//! requests, each answered with its documented status (docs/http-api.md) and JSON reason, every
//! refused beacon counted, and the collector healthy afterwards: no panic, /healthz and
//! /readyz 200, and a good beacon still stored.
//!
//! Below the service, hyper answers on its own (measured with hyper 1.12 and the collector's
//! settings in `service.rs`: a 32 KiB read buffer, at most 64 headers, the header read
//! timeout). These requests never reach the service, so they get no JSON body and are not
//! counted in the beacon metrics:
//! - a head larger than the read buffer (one long header, a long URL) or with too many
//!   headers: `431`, empty body, connection closed;
//! - a malformed request line, header or body framing: `400`, empty body, connection closed;
//! - headers still incomplete at the header read timeout (slow-loris: the timeout runs from
//!   the first read and no byte restarts it), or an idle connection: closed, no response;
//! - an HTTP/2 preface: closed, no response.
//!
//! A body sent slower than `server.request_timeout_ms` is the service's: `503` with reason
//! `timeout` and `Retry-After: 1`, then the connection is closed.

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    thread,
    time::{Duration, Instant},
};

use e2e::{Collector, Install, RawEnd, RawReply, read_raw, wait_for_count};

const SITE: &str = "[[sites]]\nid = \"shop\"\nallowed_hosts = [\"shop.example.ru\", \"*.example.com\"]\n";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
/// `server.request_timeout_ms` of this test's collector: low, so that a slow body hits it.
const REQUEST_TIMEOUT_MS: u64 = 1_000;
/// `server.header_read_timeout_ms` of this test's collector (10 s by default): short, so that
/// slow-loris connections are cut within the test's time.
const HEADER_READ_TIMEOUT_MS: u64 = 3_000;
/// The collector's body cap (docs/http-api.md).
const MAX_BODY: usize = 16 * 1024;
const GOOD: &str = r#"{"site":"shop","url":"https://shop.example.ru/good"}"#;

fn start(install: &Install) -> Collector {
    let collector = install.collector_with_server(
        &format!("request_timeout_ms = {REQUEST_TIMEOUT_MS}\nheader_read_timeout_ms = {HEADER_READ_TIMEOUT_MS}"),
        &format!("[sink]\nflush_interval_ms = 200\n{SITE}"),
        &[],
    );
    collector.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
    collector
}

/// `line`, then Host, User-Agent and `Connection: close`, then `headers` (full lines), then
/// the blank line.
fn head(line: &[u8], headers: &str) -> Vec<u8> {
    let mut request = line.to_vec();
    request
        .extend_from_slice(format!("\r\nHost: c\r\nUser-Agent: {UA}\r\nConnection: close\r\n{headers}\r\n").as_bytes());
    request
}

/// A GET of `target` (raw bytes: it may hold what no client would send).
fn get(target: &[u8]) -> Vec<u8> {
    head(&[b"GET ", target, b" HTTP/1.1"].concat(), "")
}

/// A POST to /api/event with `headers` and `body`, its Content-Length set, and the `Origin` a
/// browser sends (without it, an accepted beacon would be a bot).
fn post(headers: &str, body: &[u8]) -> Vec<u8> {
    let headers = format!("Origin: https://shop.example.ru\r\n{headers}Content-Length: {}\r\n", body.len());
    let mut request = head(b"POST /api/event HTTP/1.1", &headers);
    request.extend_from_slice(body);
    request
}

/// [`post`] with one header line given as raw bytes.
fn post_raw_header(line: &[u8], body: &[u8]) -> Vec<u8> {
    let request = post("", body);
    let at = request.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    [&request[..at], line, b"\r\n", &request[at..]].concat()
}

/// A POST whose head declares chunked and whose body is `raw`, framing and all.
fn chunked_raw(raw: &[u8]) -> Vec<u8> {
    [head(b"POST /api/event HTTP/1.1", "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"), raw.to_vec()]
        .concat()
}

/// A POST with these framing headers and no body.
fn framing(headers: &str) -> Vec<u8> {
    head(b"POST /api/event HTTP/1.1", &format!("Content-Type: text/plain\r\n{headers}"))
}

/// `request` with its method (the first word) replaced.
fn with_method(method: &str, request: Vec<u8>) -> Vec<u8> {
    let space = request.iter().position(|&b| b == b' ').unwrap();
    [method.as_bytes(), &request[space..]].concat()
}

/// A beacon for shop up to the opening quote of `name`.
const NAME_PREFIX: &str = r#"{"site":"shop","url":"https://shop.example.ru/hostile","name":""#;

/// A beacon whose `name` is these raw bytes.
fn raw_name(bytes: &[u8]) -> Vec<u8> {
    [NAME_PREFIX.as_bytes(), bytes, b"\"}"].concat()
}

/// A POST as sendBeacon sends it.
fn text(body: impl AsRef<[u8]>) -> Vec<u8> {
    post("Content-Type: text/plain;charset=UTF-8\r\n", body.as_ref())
}

fn gzipped(body: &[u8]) -> Vec<u8> {
    post("Content-Type: text/plain\r\nContent-Encoding: gzip\r\n", body)
}

/// A POST whose body is sent chunked, in `chunk`-byte chunks.
fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut request = head(b"POST /api/event HTTP/1.1", "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n");
    for part in body.chunks(chunk) {
        request.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        request.extend_from_slice(part);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A beacon for shop with `extra` JSON members appended.
fn beacon(extra: &str) -> String {
    format!(r#"{{"site":"shop","url":"https://shop.example.ru/hostile"{extra}}}"#)
}

/// 2^70: beyond u64 and i64, still a finite f64.
const TWO_TO_70: &str = "1180591620717411303424";

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A beacon accepted with this status (202, or 200 for the GIF), of this type.
    Accepted(u16, &'static str),
    /// Served normally with this status (not a beacon).
    Served(u16),
    /// Refused by the collector: status, JSON `reason`, JSON `field`.
    Refused(u16, &'static str, &'static str),
    /// Refused by hyper before the service: status, empty body, connection closed.
    Hyper(u16),
    /// Connection closed without any response.
    NoResponse,
}

/// The path of a request's target, as the collector routes it (absolute form included).
fn path_of(request: &[u8]) -> String {
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let target = String::from_utf8_lossy(line).split(' ').nth(1).unwrap_or_default().to_owned();
    let target = target.split_once("://").map_or(target.as_str(), |(_, rest)| &rest[rest.find('/').unwrap_or(0)..]);
    target.split('?').next().unwrap_or_default().to_owned()
}

/// The corpus: (what, raw request, expected answer).
fn corpus() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    let invalid = Refused(400, "invalid_beacon", "");
    let unreadable = Refused(400, "unreadable_body", "");
    let too_large = Refused(413, "payload_too_large", "");
    let media = Refused(415, "unsupported_media_type", "");
    let not_allowed = Refused(405, "method_not_allowed", "");
    let good_gzip = gzip(GOOD.as_bytes());
    let flip = |at: &[usize]| {
        let mut bytes = good_gzip.clone();
        for &i in at {
            bytes[i] ^= 0xff;
        }
        bytes
    };
    let bomb = gzip(&vec![0u8; 10_000_000]);
    assert!(bomb.len() < MAX_BODY, "the bomb must pass the compressed-size cap: {} bytes", bomb.len());
    let over = beacon(&format!(r#","name":"{}""#, "x".repeat(MAX_BODY)));
    let over = &over.as_bytes()[..MAX_BODY + 1];
    let exact = {
        let mut body = beacon("").replace("/hostile", "/exactly-16-kib").into_bytes();
        body.resize(MAX_BODY, b' ');
        body
    };
    let headers = |n: usize| (0..n).map(|i| format!("X-Flood-{i}: v\r\n")).collect::<String>();
    let gif = |query: &str| get(format!("/api/event.gif?{query}").as_bytes());
    let good_query = "site=shop&url=https%3A%2F%2Fshop.example.ru%2Fgif";

    vec![
        // Truncated, empty and non-object JSON.
        ("truncated inside a string", text(r#"{"site":"shop","url":"https://shop.example.ru/"#), invalid),
        ("truncated after a key", text(r#"{"site""#), invalid),
        ("truncated inside a \\u escape", text(beacon(r#","name":"\u00"#).trim_end_matches('}')), invalid),
        ("a lone {", text("{"), invalid),
        ("empty body", text(""), invalid),
        ("whitespace only", text(" \t\r\n "), invalid),
        ("JSON array", text("[]"), invalid),
        ("array of beacons", text(format!("[{GOOD}]")), invalid),
        ("JSON string", text(r#""shop""#), invalid),
        ("JSON number", text("42"), invalid),
        ("JSON null", text("null"), invalid),
        ("JSON true", text("true"), invalid),
        ("two objects", text(format!("{GOOD}{GOOD}")), invalid),
        ("byte-order mark", text([b"\xef\xbb\xbf", GOOD.as_bytes()].concat()), invalid),
        // Deep nesting: serde_json's recursion limit, well inside the body cap.
        ("16000 [", text("[".repeat(16_000)), invalid),
        ("3000 nested objects", text(r#"{"a":"#.repeat(3_000)), invalid),
        ("deep nesting in props", text(format!(r#"{{"site":"shop","props":{{"a":{}"#, "[".repeat(15_000))), invalid),
        // Huge and odd numbers in numeric fields.
        ("sw 1e999", text(beacon(r#","sw":1e999"#)), invalid),
        ("sw 2^70", text(beacon(&format!(r#","sw":{TWO_TO_70}"#))), Refused(400, "invalid_beacon", "sw")),
        ("sw -0", text(beacon(r#","sw":-0"#)), Refused(400, "invalid_beacon", "sw")),
        ("sw 1.5", text(beacon(r#","sw":1.5"#)), Refused(400, "invalid_beacon", "sw")),
        ("sw NaN", text(beacon(r#","sw":NaN"#)), invalid),
        ("sw \"NaN\"", text(beacon(r#","sw":"NaN""#)), Refused(400, "invalid_beacon", "sw")),
        ("t.lcp 1e999", text(beacon(r#","type":"timing","t":{"lcp":1e999}"#)), invalid),
        (
            "t.lcp 2^70",
            text(beacon(&format!(r#","type":"timing","t":{{"lcp":{TWO_TO_70}}}"#))),
            Refused(400, "invalid_beacon", "t"),
        ),
        ("t.cls Infinity", text(beacon(r#","type":"timing","t":{"cls":Infinity}"#)), invalid),
        ("t.lcp -1", text(beacon(r#","type":"timing","t":{"lcp":-1}"#)), Refused(400, "invalid_beacon", "t")),
        // -0 ms is 0 ms; numbers in props are kept as text; a line number beyond u64 is dropped.
        ("t.lcp -0", text(beacon(r#","type":"timing","t":{"lcp":-0}"#)), Accepted(202, "timing")),
        (
            "huge numbers in props",
            text(beacon(&format!(r#","props":{{"a":{TWO_TO_70},"b":-0,"c":1e308,"d":-1e-308}}"#))),
            Accepted(202, "pageview"),
        ),
        (
            "err.line 2^70",
            text(beacon(&format!(r#","type":"error","err":{{"msg":"boom","line":{TWO_TO_70},"col":-1}}"#))),
            Accepted(202, "error"),
        ),
        // Invalid UTF-8 in the body and in string fields.
        ("0xFF byte in site", text(br#"{"site":"sh\xffop","url":"https://shop.example.ru/"}"#), invalid),
        ("overlong / in name", text(raw_name(b"\xc0\xaf")), invalid),
        ("UTF-16 surrogate bytes in name", text(raw_name(b"\xed\xa0\x80")), invalid),
        ("Latin-1 in name", text(raw_name(b"caf\xe9")), invalid),
        ("truncated UTF-8 at the end", text([NAME_PREFIX.as_bytes(), &"ш".as_bytes()[..1]].concat()), invalid),
        ("lone surrogate escape", text(beacon(r#","name":"\ud800""#)), invalid),
        (
            "NUL escape in site",
            text(r#"{"site":"sh\u0000op","url":"https://shop.example.ru/"}"#),
            Refused(403, "unknown_site", ""),
        ),
        // Size: the cap applies to the declared, the streamed and the decompressed body.
        ("16 KiB + 1", text(over), too_large),
        ("16 KiB + 1 chunked", chunked(over, 1000), too_large),
        (
            "10 MB declared, Expect: 100-continue, no body",
            head(
                b"POST /api/event HTTP/1.1",
                "Content-Type: text/plain\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n",
            ),
            too_large,
        ),
        ("exactly 16 KiB", text(&exact), Accepted(202, "pageview")),
        // gzip.
        ("gzip bomb: 10 MB of zeros", gzipped(&bomb), too_large),
        ("gzip truncated", gzipped(&good_gzip[..good_gzip.len() / 2]), unreadable),
        ("gzip with corrupt deflate data", gzipped(&flip(&[12, 15, 20])), unreadable),
        ("gzip with a wrong CRC", gzipped(&flip(&[good_gzip.len() - 6])), unreadable),
        ("gzip header only", gzipped(&good_gzip[..10]), unreadable),
        ("not gzip at all", gzipped(b"not gzip"), unreadable),
        ("gzip, empty body", gzipped(b""), unreadable),
        ("gzip inside gzip", gzipped(&gzip(&good_gzip)), invalid),
        (
            "two gzip members (RFC 1952)",
            gzipped(&[gzip(&GOOD.as_bytes()[..10]), gzip(&GOOD.as_bytes()[10..])].concat()),
            Accepted(202, "pageview"),
        ),
        ("gzip followed by garbage", gzipped(&[good_gzip.as_slice(), b"garbage"].concat()), unreadable),
        // Content types and encodings.
        ("form body", post("Content-Type: application/x-www-form-urlencoded\r\n", b"site=shop"), media),
        ("multipart", post("Content-Type: multipart/form-data; boundary=x\r\n", GOOD.as_bytes()), media),
        ("text/html", post("Content-Type: text/html\r\n", GOOD.as_bytes()), media),
        ("no Content-Type", post("", GOOD.as_bytes()), media),
        ("8-bit Content-Type", post_raw_header(b"Content-Type: text/plain\xff", GOOD.as_bytes()), media),
        ("control byte in Content-Type", post_raw_header(b"Content-Type: text/\x01plain", GOOD.as_bytes()), Hyper(400)),
        ("Content-Encoding: br", post("Content-Type: text/plain\r\nContent-Encoding: br\r\n", &good_gzip), media),
        (
            "Content-Encoding: deflate",
            post("Content-Type: text/plain\r\nContent-Encoding: deflate\r\n", &good_gzip),
            media,
        ),
        (
            "Content-Encoding: gzip, gzip",
            post("Content-Type: text/plain\r\nContent-Encoding: gzip, gzip\r\n", &good_gzip),
            media,
        ),
        // Body framing.
        ("chunk size not hex", chunked_raw(b"zz\r\nabc\r\n0\r\n\r\n"), unreadable),
        ("chunk size over u64", chunked_raw(b"fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"), unreadable),
        ("Content-Length: abc", framing("Content-Length: abc\r\n"), Hyper(400)),
        ("Content-Length: -1", framing("Content-Length: -1\r\n"), Hyper(400)),
        ("Content-Length: 2^64", framing("Content-Length: 18446744073709551616\r\n"), Hyper(400)),
        ("two different Content-Lengths", framing("Content-Length: 5\r\nContent-Length: 6\r\n"), Hyper(400)),
        ("Transfer-Encoding: gzip", framing("Transfer-Encoding: gzip\r\n"), Hyper(400)),
        // Methods.
        ("BREW /api/event", head(b"BREW /api/event HTTP/1.1", ""), not_allowed),
        ("lower-case post", head(b"post /api/event HTTP/1.1", ""), not_allowed),
        ("TRACE /api/event", head(b"TRACE /api/event HTTP/1.1", ""), not_allowed),
        ("GET /api/event", get(b"/api/event"), not_allowed),
        ("PUT /api/event", with_method("PUT", post("Content-Type: text/plain\r\n", GOOD.as_bytes())), not_allowed),
        ("DELETE /api/event.gif", head(b"DELETE /api/event.gif HTTP/1.1", ""), not_allowed),
        (
            "a 10000-letter method",
            head(format!("{} /api/event HTTP/1.1", "X".repeat(10_000)).as_bytes(), ""),
            not_allowed,
        ),
        ("control byte in the method", head(b"G\x01T /api/event HTTP/1.1", ""), Hyper(400)),
        ("BREW /healthz", head(b"BREW /healthz HTTP/1.1", ""), Refused(405, "method_not_allowed", "")),
        ("CONNECT", head(b"CONNECT shop.example.ru:443 HTTP/1.1", ""), Refused(404, "not_found", "")),
        ("OPTIONS *", head(b"OPTIONS * HTTP/1.1", ""), Refused(404, "not_found", "")),
        // Not HTTP/1.1.
        ("HTTP/9.9", head(b"GET /healthz HTTP/9.9", ""), Hyper(400)),
        ("bare CR", b"GET /healthz HTTP/1.1\rHost: c\r\n\r\n".to_vec(), Hyper(400)),
        ("TLS ClientHello", [&b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..], &[0u8; 100]].concat(), Hyper(400)),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), NoResponse),
        ("NUL in a header value", head(b"GET /healthz HTTP/1.1", "X-A: a\0b\r\n"), Hyper(400)),
        ("obsolete line folding", head(b"GET /healthz HTTP/1.1", "X-A: a\r\n folded\r\n"), Hyper(400)),
        // GET /api/event.gif with junk query strings.
        ("31000-character query", gif(&"a".repeat(31_000)), Refused(400, "invalid_beacon", "site")),
        ("20000 &", gif(&"&".repeat(20_000)), Refused(400, "invalid_beacon", "site")),
        ("20000 %", gif(&"%".repeat(20_000)), Refused(400, "invalid_beacon", "site")),
        ("7000 empty parameters", gif(&"a=%&".repeat(7_000)), Refused(400, "invalid_beacon", "site")),
        (
            "invalid percent-encoding in props",
            gif(&format!("{good_query}&sw=%G0&props=%7B%ZZ")),
            Refused(400, "invalid_beacon", "props"),
        ),
        ("invalid percent-encoding in sw", gif(&format!("{good_query}&sw=%G0")), Refused(400, "invalid_beacon", "sw")),
        ("t 1e999", gif(&format!("{good_query}&t=%7B%22lcp%22%3A1e999%7D")), Refused(400, "invalid_beacon", "t")),
        ("sw 10^23", gif(&format!("{good_query}&sw=99999999999999999999999")), Refused(400, "invalid_beacon", "sw")),
        (
            "props 5000 [",
            gif(&format!("{good_query}&props={}", "%5B".repeat(5_000))),
            Refused(400, "invalid_beacon", "props"),
        ),
        (
            "percent-encoded junk in site",
            gif("site=%ff%fe%&url=https%3A%2F%2Fshop.example.ru%2F"),
            Refused(403, "unknown_site", ""),
        ),
        // Lossy decoding: a page or name with broken escapes is still a page view.
        (
            "invalid percent-encoding in url",
            gif("site=shop&url=https%3A%2F%2Fshop.example.ru%2F%zz%ff%&sw=1"),
            Accepted(200, "pageview"),
        ),
        (
            "percent-encoded invalid UTF-8 in name",
            gif(&format!("{good_query}&name=%C0%AF%ED%A0%80%")),
            Accepted(200, "pageview"),
        ),
        (
            "absolute-form target",
            get(format!("http://evil.example/api/event.gif?{good_query}").as_bytes()),
            Accepted(200, "pageview"),
        ),
        (
            "8-bit bytes in the target",
            get(b"/api/event.gif?site=shop&url=https://shop.example.ru/\xff\xfe"),
            Hyper(400),
        ),
        ("100 KB query", gif(&"a".repeat(100_000)), Hyper(431)),
        // Header floods: hyper counts headers (the collector allows 64) and bytes (the 32 KiB
        // read buffer). A browser sends 10 to 20 headers.
        ("30 headers", head(b"GET /healthz HTTP/1.1", &headers(27)), Served(200)),
        ("200 headers", head(b"GET /healthz HTTP/1.1", &headers(197)), Hyper(431)),
        ("5000 headers", head(b"GET /healthz HTTP/1.1", &headers(5_000)), Hyper(431)),
        ("a 30 KB header", head(b"GET /healthz HTTP/1.1", &format!("X-Big: {}\r\n", "a".repeat(30_000))), Served(200)),
        (
            "a 64 KiB header",
            head(b"GET /healthz HTTP/1.1", &format!("X-Big: {}\r\n", "a".repeat(64 * 1024))),
            Hyper(431),
        ),
    ]
}

/// Checks one answer against its expectation; panics with the case and the reply.
fn check(what: &str, reply: &RawReply, expect: Expect) {
    match expect {
        Expect::Accepted(status, _) | Expect::Served(status) => {
            assert_eq!(reply.status(), Some(status), "{what}: {reply}");
        }
        Expect::Refused(status, reason, field) => {
            assert_eq!(reply.status(), Some(status), "{what}: {reply}");
            assert_eq!(reply.header("content-type"), Some("application/json"), "{what}: {reply}");
            let json = reply.json();
            assert_eq!(json["reason"], reason, "{what}: {json}");
            assert_eq!(json["field"], field, "{what}: {json}");
            assert!(
                json["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{what}: the error says what is wrong: {json}"
            );
            if status == 405 {
                assert!(reply.header("allow").is_some(), "{what}: 405 names the allowed methods: {reply}");
            }
        }
        Expect::Hyper(status) => {
            assert_eq!(reply.status(), Some(status), "{what}: {reply}");
            assert!(reply.body().is_empty(), "{what}: hyper's own answer has no body: {reply}");
            assert_eq!(reply.header("connection"), Some("close"), "{what}: {reply}");
        }
        Expect::NoResponse => assert!(reply.bytes.is_empty(), "{what}: expected no response: {reply}"),
    }
    // Every request here asks for (or forces) the close: no connection is left open.
    assert_ne!(reply.end, RawEnd::Open, "{what}: the connection stays open: {reply}");
    assert!(reply.responses() <= 1, "{what}: more than one response: {reply}");
}

/// A connection that sends the start of a request one byte a second (or, if `silent`,
/// nothing) and never finishes its headers; returns when the collector closes it, anything
/// arrives, or 20 s pass.
fn slow_loris(addr: SocketAddr, silent: bool) -> RawReply {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("the collector accepts connections");
    let partial = format!("POST /api/event HTTP/1.1\r\nHost: c\r\nUser-Agent: {UA}\r\nX-Slow: {}", "a".repeat(100));
    for byte in partial.as_bytes().iter().cycle() {
        if !silent && stream.write_all(&[*byte]).is_err() {
            return RawReply { bytes: Vec::new(), end: RawEnd::Failed, elapsed: started.elapsed() };
        }
        let reply = read_raw(&mut stream, Instant::now(), Duration::from_secs(1));
        if reply.end != RawEnd::Open || !reply.bytes.is_empty() || started.elapsed() > Duration::from_secs(20) {
            return RawReply { elapsed: started.elapsed(), ..reply };
        }
    }
    unreachable!("the partial request cycles forever")
}

/// A complete head, then the body of a valid beacon at four bytes a second, far slower than
/// the request timeout. Returns what comes back, once the collector closes.
fn slow_body(addr: SocketAddr, chunked: bool) -> RawReply {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("the collector accepts connections");
    let body = GOOD.as_bytes();
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n".to_owned()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    stream.write_all(&head(b"POST /api/event HTTP/1.1", &format!("Content-Type: text/plain\r\n{framing}"))).unwrap();
    for &byte in body {
        let piece = if chunked { [&b"1\r\n"[..], &[byte], b"\r\n"].concat() } else { vec![byte] };
        let sent = stream.write_all(&piece);
        let reply = read_raw(&mut stream, Instant::now(), Duration::from_millis(250));
        if sent.is_err() || reply.end != RawEnd::Open || !reply.bytes.is_empty() {
            // The answer, then the close.
            let rest = read_raw(&mut stream, Instant::now(), Duration::from_secs(5));
            return RawReply { bytes: [reply.bytes, rest.bytes].concat(), end: rest.end, elapsed: started.elapsed() };
        }
    }
    panic!("the whole body went at four bytes a second and nothing came back within {:?}", started.elapsed())
}

fn rejected(c: &Collector, reason: &str) -> f64 {
    c.metric(&format!("webstats_collector_beacons_rejected_total{{reason=\"{reason}\"}}"))
}

#[test]
fn hostile_input_gets_its_status_and_leaves_the_collector_healthy() {
    let started = Instant::now();
    let install = Install::new("hostile");
    let c = start(&install);
    let addr = c.addr;

    // The slow clients first, in threads: the corpus and a health check run while they hang on.
    let lorises: Vec<_> = (0..50).map(|i| thread::spawn(move || slow_loris(addr, i % 10 == 9))).collect();
    let slow_bodies = [false, true].map(|chunked| thread::spawn(move || slow_body(addr, chunked)));
    thread::sleep(Duration::from_millis(1_500));
    let asked = Instant::now();
    let health = c.raw(&get(b"/healthz"));
    assert_eq!(health.status(), Some(200), "/healthz with 50 slow connections open: {health}");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "/healthz took {:?} with 50 slow connections open",
        asked.elapsed()
    );

    let mut counted = std::collections::BTreeMap::<&str, f64>::new();
    let mut accepted = std::collections::BTreeMap::<&str, f64>::new();
    for (what, request, expect) in corpus() {
        let reply = c.raw(&request);
        check(what, &reply, expect);
        match expect {
            Expect::Refused(_, reason, _) if matches!(path_of(&request).as_str(), "/api/event" | "/api/event.gif") => {
                *counted.entry(reason).or_default() += 1.0;
            }
            Expect::Accepted(_, kind) => *accepted.entry(kind).or_default() += 1.0,
            _ => {}
        }
    }

    // A body cut short by the sender (half-close before Content-Length bytes) is unreadable.
    let mut stream = TcpStream::connect(addr).unwrap();
    let sent = Instant::now();
    let request = text(GOOD);
    stream.write_all(&request[..request.len() - 10]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let reply = read_raw(&mut stream, sent, Duration::from_secs(5));
    check("body shorter than its Content-Length", &reply, Expect::Refused(400, "unreadable_body", ""));
    *counted.entry("unreadable_body").or_default() += 1.0;

    // Content-Length with Transfer-Encoding, on a keep-alive connection: hyper goes by the
    // chunked framing and closes after the answer, so the request smuggled behind the body
    // is never served.
    let smuggled = c.raw(
        b"POST /api/event HTTP/1.1\r\nHost: c\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: c\r\n\r\n",
    );
    check("Content-Length with Transfer-Encoding", &smuggled, Expect::Refused(400, "invalid_beacon", ""));
    assert_eq!(smuggled.responses(), 1, "the smuggled request was served: {smuggled}");
    assert!(smuggled.elapsed < Duration::from_secs(5), "closed at once, not by a timeout: {smuggled}");
    *counted.entry("invalid_beacon").or_default() += 1.0;

    // Every refusal at the beacon endpoints is counted by its reason; accepted ones by type.
    for (reason, n) in &counted {
        assert_eq!(rejected(&c, reason), *n, "beacons_rejected_total{{reason={reason:?}}}");
    }
    for (kind, n) in &accepted {
        let accepted = c.metric_sum("webstats_collector_beacons_accepted_total", &[("type", kind)]);
        assert_eq!(accepted, *n, "beacons_accepted_total{{type={kind:?}}}");
    }

    // Slow-loris: no response, closed by the header read timeout (which each byte does not
    // restart), not before.
    let header_timeout = Duration::from_millis(HEADER_READ_TIMEOUT_MS);
    for (i, loris) in lorises.into_iter().enumerate() {
        let reply = loris.join().unwrap();
        assert!(reply.bytes.is_empty(), "slow connection {i} got an answer: {reply}");
        assert_ne!(reply.end, RawEnd::Open, "slow connection {i} was never closed: {reply}");
        assert!(
            (header_timeout..header_timeout + Duration::from_secs(4)).contains(&reply.elapsed),
            "slow connection {i} closed after {:?}, not at the {header_timeout:?} header read timeout",
            reply.elapsed
        );
    }
    c.wait_until(|c| c.metric("webstats_collector_http_connections") <= 2.0, "the slow connections to be released");
    // A body slower than the request timeout: 503 timeout, then the connection is closed.
    for (body, framing) in slow_bodies.into_iter().zip(["Content-Length", "chunked"]) {
        let reply = body.join().unwrap();
        let what = format!("slow {framing} body");
        check(&what, &reply, Expect::Refused(503, "timeout", ""));
        assert_eq!(reply.header("retry-after"), Some("1"), "{what}: {reply}");
        let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
        assert!((timeout..timeout * 3).contains(&reply.elapsed), "{what}: answered after {:?}", reply.elapsed);
    }
    assert_eq!(rejected(&c, "timeout"), 2.0);
    // Nothing else was refused for load.
    assert_eq!(c.metric("webstats_collector_http_requests_total{endpoint=\"event\",status=\"503\"}"), 2.0);

    // Healthy afterwards: live, ready, a good beacon stored, and no panic.
    assert_eq!(c.get("/healthz").0, 200);
    assert_eq!(c.get("/readyz").0, 200);
    let after = c.beacon(r#"{"site":"shop","url":"https://shop.example.ru/after-hostile"}"#, &[("user-agent", UA)]);
    assert_eq!(after.status, 202, "a good beacon after the corpus: {}", after.text());
    let audience = install.audience();
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {audience} WHERE path = '/after-hostile'"), 1), 1);
    // The page views accepted in the corpus were stored too (timing and error beacons go to
    // the troubleshooting table only).
    let pageviews = accepted.get("pageview").copied().unwrap_or_default() as u64 + 1;
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {audience}"), pageviews), pageviews);
    assert_eq!(c.metric("webstats_collector_http_request_panics_total"), 0.0);
    let log = c.log_text();
    assert!(!log.contains("panicked"), "the collector panicked:\n{log}");
    eprintln!("hostile input: {:?} in all", started.elapsed());
}

/// Regression, found by this corpus: `scrub::with_urls` sliced its text one byte after the
/// last non-scheme character before `://`, inside that character when it is not ASCII, so an
/// error report such as `Не удалось загрузить «https://...»` panicked the handler
/// (`byte index N is not a char boundary`, collector/src/scrub.rs:83 at 4aaaebe). The sender
/// got 500 `internal_error` (before the panic isolation in `service.rs`, a dropped
/// connection), the beacon was lost, and the panic message in the log quoted the visitor's
/// text. The contract answer is 202, and the beacon stored.
#[test]
fn error_text_with_a_non_ascii_character_before_a_url_is_accepted() {
    let install = Install::new("hostileurl");
    let c = start(&install);
    let reports = [
        ("msg", r#"{"msg":"Не удалось загрузить «https://shop.example.ru/app.js»"}"#),
        ("src", r#"{"msg":"boom","src":"ссылкаhttps://shop.example.ru/app.js"}"#),
        (
            "stack",
            r#"{"msg":"boom","stack":"at «https://shop.example.ru/app.js:10:5»\nat ёhttp://shop.example.ru/x.js:1:2"}"#,
        ),
    ];
    let replies: Vec<_> = reports
        .iter()
        .map(|(field, err)| {
            let reply = c.raw(&text(beacon(&format!(r#","type":"error","err":{err}"#))));
            (*field, reply.status(), reply.to_string())
        })
        .collect();
    for (field, status, reply) in &replies {
        assert_eq!(*status, Some(202), "err.{field} with a non-ASCII character before ://: {reply}");
    }
    assert_eq!(c.metric("webstats_collector_http_request_panics_total"), 0.0);
    assert!(!c.log_text().contains("panicked"), "the collector panicked:\n{}", c.log_text());
    let trouble = install.troubleshooting();
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {trouble} WHERE type = 'error'"), 3), 3);
}
