//! Responses: the one place where a [`Rejection`] becomes HTTP, from the table in
//! `crate::refusal`, as a hyper response or as raw bytes for a connection hyper never takes.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::refusal::Rejection;

pub type Body = Full<Bytes>;

/// Marks a response as a refusal, for the metrics recorded around the whole service.
#[derive(Debug, Clone, Copy)]
pub struct RejectedFor(pub &'static str);

/// `{"error": "...", "field": "...", "reason": "..."}`.
fn body(rejection: &Rejection) -> String {
    serde_json::json!({
        "error": rejection.message(),
        "field": rejection.field(),
        "reason": rejection.refusal().reason,
    })
    .to_string()
}

/// The response for a refusal, with the body above.
pub fn rejection(rejection: Rejection) -> Response<Body> {
    let refusal = rejection.refusal();
    let mut response = Response::new(Full::new(Bytes::from(body(&rejection))));
    *response.status_mut() = refusal.status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(seconds) = refusal.retry_after_s {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let Rejection::MethodNotAllowed { allow } = rejection {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response.extensions_mut().insert(RejectedFor(refusal.reason));
    response
}

/// The same response as raw HTTP/1.1 bytes that close the connection: for refusals made
/// before hyper takes a connection.
pub fn raw_http1(rejection: &Rejection) -> Vec<u8> {
    let refusal = rejection.refusal();
    let body = body(rejection);
    let retry_after = refusal.retry_after_s.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
    format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n{retry_after}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        refusal.status.as_u16(),
        refusal.status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = status;
    response
}

pub fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Plain text, for the health endpoints.
pub fn plain(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    text(status, "text/plain; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_gets_a_complete_http_response() {
        let raw = String::from_utf8(raw_http1(&Rejection::TooManyConnections)).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
        assert!(head.contains("Retry-After: 1\r\n") && head.contains("Connection: close"), "{head}");
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())), "{head}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(body).unwrap()["reason"], "too_many_connections");
    }
}
