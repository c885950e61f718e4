//! The endpoints of docs/http-api.md: each path spelled once ([`endpoint`]), each request
//! resolved to a [`Route`], and one function per route. Beacon routes read the request and
//! leave the domain work to `Ingest`; refusals are `Rejection`s, answered by `respond`.

use std::{
    io::Read,
    net::{IpAddr, Ipv4Addr},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header, request::Parts};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::{
    Peer, State,
    client_ip::client_ip,
    respond::{self, Body},
};
use crate::{config::MAX_BODY_BYTES, ingest::Arrival, metrics::Endpoint, refusal::Rejection};

/// The endpoint of a path.
pub fn endpoint(path: &str) -> Endpoint {
    match path {
        "/api/event" => Endpoint::Event,
        "/api/event.gif" => Endpoint::EventGif,
        "/script.js" => Endpoint::Script,
        "/healthz" => Endpoint::Healthz,
        "/readyz" => Endpoint::Readyz,
        "/metrics" => Endpoint::Metrics,
        _ => Endpoint::Other,
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/event`: a beacon in the body.
    PostBeacon,
    /// `GET /api/event.gif`: a beacon in the query string.
    GifBeacon,
    /// `OPTIONS` on either beacon endpoint: CORS preflight.
    Preflight,
    /// `GET` or `HEAD /script.js`.
    Snippet,
    Healthz,
    Readyz,
    Metrics,
    /// A known path with a method it does not take: `Allow` lists those it does.
    WrongMethod {
        allow: &'static str,
    },
    NotFound,
}

impl Route {
    pub fn of(method: &Method, path: &str) -> Route {
        match (endpoint(path), method) {
            (Endpoint::Event, &Method::POST) => Route::PostBeacon,
            (Endpoint::EventGif, &Method::GET) => Route::GifBeacon,
            (Endpoint::Event | Endpoint::EventGif, &Method::OPTIONS) => Route::Preflight,
            (Endpoint::Event, _) => Route::WrongMethod { allow: "POST, OPTIONS" },
            (Endpoint::EventGif, _) => Route::WrongMethod { allow: "GET, OPTIONS" },
            (Endpoint::Script, &Method::GET | &Method::HEAD) => Route::Snippet,
            (Endpoint::Healthz, &Method::GET) => Route::Healthz,
            (Endpoint::Readyz, &Method::GET) => Route::Readyz,
            (Endpoint::Metrics, &Method::GET) => Route::Metrics,
            (Endpoint::Script | Endpoint::Healthz | Endpoint::Readyz | Endpoint::Metrics, _) => {
                Route::WrongMethod { allow: "GET" }
            }
            (Endpoint::Other, _) => Route::NotFound,
        }
    }

    /// Answers a request.
    pub async fn serve(state: &State, request: Request<Incoming>) -> Response<Body> {
        let result = match Route::of(request.method(), request.uri().path()) {
            Route::PostBeacon => post_beacon(state, request).await,
            Route::GifBeacon => gif_beacon(state, request).await,
            Route::Preflight => preflight(state, request.headers()),
            Route::Snippet => Ok(state.snippet.respond(request.headers())),
            Route::Healthz => Ok(respond::plain(StatusCode::OK, "ok\n")),
            Route::Readyz => Ok(match state.ingest.readiness() {
                Ok(()) => respond::plain(StatusCode::OK, "ready\n"),
                Err(rejection) => respond::plain(StatusCode::SERVICE_UNAVAILABLE, format!("{rejection}\n")),
            }),
            Route::Metrics => {
                Ok(respond::text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", state.metrics.render()))
            }
            Route::WrongMethod { allow } => Err(Rejection::MethodNotAllowed { allow }),
            Route::NotFound => Err(Rejection::NotFound),
        };
        result.unwrap_or_else(respond::rejection)
    }
}

async fn post_beacon(state: &State, request: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let (parts, body) = request.into_parts();
    let ip = admit(state, &parts)?;
    let gzip = body_encoding(&parts.headers)?;
    let body = read_body(body, gzip).await?;
    let beacon = beacon::from_json(&body)?;
    state.ingest.accept(beacon, Arrival { ip, headers: &parts.headers, post: true }).await?;
    let mut response = respond::empty(StatusCode::ACCEPTED);
    // Accepted, so any Origin sent is an allowed host of the beacon's site.
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        cors_headers(origin, response.headers_mut());
    }
    Ok(response)
}

async fn gif_beacon(state: &State, request: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let (parts, _body) = request.into_parts();
    let ip = admit(state, &parts)?;
    let beacon = beacon::from_query(parts.uri.query().unwrap_or_default())?;
    state.ingest.accept(beacon, Arrival { ip, headers: &parts.headers, post: false }).await?;
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
fn admit(state: &State, parts: &Parts) -> Result<IpAddr, Rejection> {
    if state.ingest.is_stopping() {
        return Err(Rejection::ShuttingDown);
    }
    let peer = parts.extensions.get::<Peer>().map(|p| p.0).unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let ip = client_ip(peer, &parts.headers, &state.trusted_proxies);
    if !state.rate_limit.admits(ip) {
        return Err(Rejection::RateLimited);
    }
    Ok(ip)
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

/// Answers a CORS preflight for an origin that is an allowed host of any site.
fn preflight(state: &State, headers: &HeaderMap) -> Result<Response<Body>, Rejection> {
    let origin = headers.get(header::ORIGIN).filter(|origin| state.ingest.allows_origin(origin));
    let Some(origin) = origin else { return Err(Rejection::OriginNotAllowed) };
    let mut response = respond::empty(StatusCode::NO_CONTENT);
    let h = response.headers_mut();
    cors_headers(origin, h);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, GET, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Content-Type, Content-Encoding"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    Ok(response)
}

fn cors_headers(origin: &HeaderValue, response: &mut HeaderMap) {
    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    response.insert(header::VARY, HeaderValue::from_static("Origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_each_path_and_method_once() {
        assert_eq!(Route::of(&Method::POST, "/api/event"), Route::PostBeacon);
        assert_eq!(Route::of(&Method::GET, "/api/event"), Route::WrongMethod { allow: "POST, OPTIONS" });
        assert_eq!(Route::of(&Method::OPTIONS, "/api/event.gif"), Route::Preflight);
        assert_eq!(Route::of(&Method::HEAD, "/script.js"), Route::Snippet);
        assert_eq!(Route::of(&Method::POST, "/metrics"), Route::WrongMethod { allow: "GET" });
        assert_eq!(Route::of(&Method::GET, "/api/event/"), Route::NotFound);
        assert_eq!(endpoint("/nope"), Endpoint::Other);
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
