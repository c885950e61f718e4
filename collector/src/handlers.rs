//! Endpoint handlers. Each reads the request, calls the pure stages, queues rows, and returns
//! a response; refusals are `Rejection`s, turned into responses in `respond`.

use std::{
    io::Read,
    net::{IpAddr, Ipv4Addr},
    sync::atomic::Ordering,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header, request::Parts};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::{
    batch::EncodedBeacon,
    beacon::{self, Beacon},
    client_ip::client_ip,
    config::MAX_BODY_BYTES,
    pipeline::{Controls, Outcome, RequestFacts, Site},
    respond::{Body, Rejection, empty},
    service::{App, Peer, readiness, status_text},
    urls,
};

pub async fn route(app: &App, request: Request<Incoming>) -> Response<Body> {
    let result = match (request.method(), request.uri().path()) {
        (&Method::POST, "/api/event") => post_event(app, request).await,
        (&Method::OPTIONS, "/api/event" | "/api/event.gif") => preflight(app, request.headers()),
        (&Method::GET, "/api/event.gif") => get_gif(app, request).await,
        (_, "/api/event") => Err(Rejection::MethodNotAllowed { allow: "POST, OPTIONS" }),
        (_, "/api/event.gif") => Err(Rejection::MethodNotAllowed { allow: "GET, OPTIONS" }),
        (&Method::GET | &Method::HEAD, "/script.js") => Ok(app.snippet.respond(request.headers())),
        (&Method::GET, "/healthz") => Ok(status_text(StatusCode::OK, "ok\n")),
        (&Method::GET, "/readyz") => Ok(match readiness(app) {
            Ok(()) => status_text(StatusCode::OK, "ready\n"),
            Err(reason) => status_text(StatusCode::SERVICE_UNAVAILABLE, reason),
        }),
        (&Method::GET, "/metrics") => {
            Ok(crate::respond::text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", app.metrics.render()))
        }
        (_, "/script.js" | "/healthz" | "/readyz" | "/metrics") => Err(Rejection::MethodNotAllowed { allow: "GET" }),
        _ => Err(Rejection::NotFound),
    };
    result.unwrap_or_else(Rejection::into_response)
}

async fn post_event(app: &App, request: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let (parts, body) = request.into_parts();
    let ip = admit(app, &parts)?;
    let gzip = body_encoding(&parts.headers)?;
    let body = read_body(body, gzip).await?;
    let beacon = beacon::from_json(&body)?;
    accept(app, beacon, &parts, ip).await?;
    let mut response = empty(StatusCode::ACCEPTED);
    // Accepted, so any Origin sent is an allowed host of the beacon's site.
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        cors_headers(origin, response.headers_mut());
    }
    Ok(response)
}

async fn get_gif(app: &App, request: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let (parts, _body) = request.into_parts();
    let ip = admit(app, &parts)?;
    let beacon = beacon::from_query(parts.uri.query().unwrap_or_default())?;
    accept(app, beacon, &parts, ip).await?;
    let mut response = Response::new(Full::new(Bytes::from_static(TRANSPARENT_GIF)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A 1×1 transparent GIF.
const TRANSPARENT_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02,
    0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Refuses a beacon before its body is read: shutting down, or over its network's rate.
/// Returns the client's address.
fn admit(app: &App, parts: &Parts) -> Result<IpAddr, Rejection> {
    if app.shutting_down.load(Ordering::Relaxed) {
        return Err(Rejection::ShuttingDown);
    }
    let peer = parts.extensions.get::<Peer>().map(|p| p.0).unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let ip = client_ip(peer, &parts.headers, &app.trusted_proxies);
    if !app.rate_limit.admits(ip) {
        return Err(Rejection::RateLimited);
    }
    Ok(ip)
}

/// Checks the site, origin and host, pseudonymises, encodes and hands the rows to the sink.
async fn accept(app: &App, beacon: Beacon, parts: &Parts, ip: IpAddr) -> Result<(), Rejection> {
    let site = app.sites.get(&beacon.site).ok_or(Rejection::UnknownSite)?;
    if let Some(origin) = parts.headers.get(header::ORIGIN)
        && !origin_host(origin).is_some_and(|h| host_allowed(site, &h))
    {
        return Err(Rejection::OriginNotAllowed);
    }
    if !beacon.url.host_str().is_some_and(|h| host_allowed(site, h)) {
        return Err(Rejection::HostNotAllowed);
    }

    let now = (app.clock)();
    let salts = app.control.salts.load();
    let keys = salts.keys_at(now).ok_or(Rejection::NoSalt)?;
    let blocklist = app.control.blocklist.load();
    let headers = &parts.headers;
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let cookie = site.config.cookie_mode.then(|| cookie_value(headers, &site.config.cookie_name)).flatten();
    let facts = RequestFacts {
        ip,
        user_agent,
        cookie,
        do_not_track: beacon.do_not_track || header_is_one(headers, "dnt") || header_is_one(headers, "sec-gpc"),
        received_at: now,
    };
    let kind = beacon.kind.0;
    let outcome = app.pipeline.process(beacon, facts, site, Controls { keys, blocklist: &blocklist });
    // Guards of the salts and blocklist must not be held across the wait in `fsync` mode.
    drop((salts, blocklist));
    let site_id = site.config.id.as_str();
    let dropped = &app.metrics.beacons_dropped;
    let [do_not_track, blocked] = crate::metrics::DROP_REASONS;
    match outcome {
        Outcome::Store { rows, is_bot, ua_cache_hit } => {
            app.sink.submit(EncodedBeacon::encode(rows)).await?;
            let metrics = &app.metrics;
            let [hit, miss] = crate::metrics::CACHE_RESULTS;
            metrics.ua_cache_lookups.with_label_values(&[if ua_cache_hit { hit } else { miss }]).inc();
            if is_bot {
                metrics.bot_hits.inc();
            }
        }
        Outcome::DroppedDoNotTrack => dropped.with_label_values(&[do_not_track, site_id]).inc(),
        // Answered like any accepted beacon: the response reveals nothing about the block.
        Outcome::DroppedBlocked => dropped.with_label_values(&[blocked, site_id]).inc(),
    }
    app.metrics.beacons_accepted.with_label_values(&[kind.as_str(), site_id]).inc();
    Ok(())
}

/// `host` matches `example.ru` exactly or `*.example.ru` for any subdomain.
fn host_allowed(site: &Site, host: &str) -> bool {
    urls::host_matches(&site.config.allowed_hosts, &host.trim_end_matches('.').to_ascii_lowercase())
}

/// Whether the body is gzip; refuses types and encodings the API does not accept.
fn body_encoding(headers: &HeaderMap) -> Result<bool, Rejection> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence != "text/plain" && essence != "application/json" {
        return Err(Rejection::UnsupportedMediaType);
    }
    match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().map(|s| s.trim().to_ascii_lowercase())) {
        None => Ok(false),
        Some(Ok(e)) if e == "identity" => Ok(false),
        Some(Ok(e)) if e == "gzip" => Ok(true),
        _ => Err(Rejection::UnsupportedMediaType),
    }
}

/// Reads at most [`MAX_BODY_BYTES`], before and after decompression.
async fn read_body(body: Incoming, gzip: bool) -> Result<Bytes, Rejection> {
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Err(Rejection::PayloadTooLarge),
        Err(_) => return Err(Rejection::UnreadableBody),
    };
    if !gzip {
        return Ok(bytes);
    }
    let mut decoded = Vec::with_capacity(MAX_BODY_BYTES.min(bytes.len() * 4));
    // One byte over the cap tells a too-large body from one exactly at the cap. Every gzip
    // member is read (RFC 1952 allows several), so trailing garbage is an error, not ignored.
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(|_| Rejection::UnreadableBody)?;
    if decoded.len() > MAX_BODY_BYTES {
        return Err(Rejection::PayloadTooLarge);
    }
    Ok(decoded.into())
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name && !v.is_empty()).then_some(v)
    })
}

fn header_is_one(headers: &HeaderMap, name: &str) -> bool {
    headers.get(name).is_some_and(|v| v.as_bytes().trim_ascii() == b"1")
}

/// Answers a CORS preflight for an origin that is an allowed host of any site.
fn preflight(app: &App, headers: &HeaderMap) -> Result<Response<Body>, Rejection> {
    let mut response = empty(StatusCode::NO_CONTENT);
    if !allow_origin(app, headers, response.headers_mut()) {
        return Err(Rejection::OriginNotAllowed);
    }
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, GET, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Content-Type, Content-Encoding"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    Ok(response)
}

/// Adds the CORS headers when the request's Origin is an allowed host of any site.
fn allow_origin(app: &App, request: &HeaderMap, response: &mut HeaderMap) -> bool {
    let Some(origin) = request.get(header::ORIGIN) else { return false };
    let allowed = origin_host(origin).is_some_and(|h| app.sites.values().any(|site| host_allowed(site, &h)));
    if allowed {
        cors_headers(origin, response);
    }
    allowed
}

fn cors_headers(origin: &HeaderValue, response: &mut HeaderMap) {
    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    response.insert(header::VARY, HeaderValue::from_static("Origin"));
}

/// The host of an `Origin` header; `None` for `null` or anything unparsable.
fn origin_host(origin: &HeaderValue) -> Option<String> {
    url::Url::parse(origin.to_str().ok()?).ok()?.host_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(hosts: &[&str]) -> Site {
        let config = toml::from_str(&format!("id = \"s\"\nallowed_hosts = {hosts:?}")).unwrap();
        Site { config, query_allowlist: Vec::new() }
    }

    #[test]
    fn matches_exact_and_wildcard_hosts() {
        let s = site(&["a.ru", "*.b.ru"]);
        assert!(host_allowed(&s, "a.ru"));
        assert!(host_allowed(&s, "A.RU."));
        assert!(host_allowed(&s, "lk.b.ru"));
        assert!(!host_allowed(&s, "b.ru"));
        assert!(!host_allowed(&s, "evilb.ru"));
        assert!(!host_allowed(&s, "a.ru.evil.com"));
    }

    #[test]
    fn reads_the_named_cookie_only() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "x=1; _wsid=abc; y=2".parse().unwrap());
        assert_eq!(cookie_value(&h, "_wsid"), Some("abc"));
        assert_eq!(cookie_value(&h, "z"), None);
    }

    #[test]
    fn accepts_only_the_contract_content_types() {
        let check = |ct: &str, ce: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            if let Some(ce) = ce {
                h.insert(header::CONTENT_ENCODING, ce.parse().unwrap());
            }
            body_encoding(&h)
        };
        assert_eq!(check("text/plain;charset=UTF-8", None), Ok(false));
        assert_eq!(check("application/json", Some("gzip")), Ok(true));
        assert_eq!(check("application/x-www-form-urlencoded", None), Err(Rejection::UnsupportedMediaType));
        assert_eq!(check("text/plain", Some("br")), Err(Rejection::UnsupportedMediaType));
    }
}
