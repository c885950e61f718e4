//! The one place where reasons for refusing a request become HTTP responses, so the mapping
//! of causes to statuses (beacon-api.md) is visible at a glance. Every refusal carries a
//! short machine-readable reason, used as the metrics label and in the JSON body.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::{beacon::BeaconError, sink::SubmitError};

pub type Body = Full<Bytes>;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{}", .0.message)]
    BadBeacon(BeaconError),
    #[error("unknown site")]
    UnknownSite,
    #[error("Origin is not an allowed host of the site")]
    OriginNotAllowed,
    #[error("the page's host is not an allowed host of the site")]
    HostNotAllowed,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("not found")]
    NotFound,
    #[error("body larger than 16 KiB")]
    PayloadTooLarge,
    #[error("Content-Type must be text/plain or application/json, Content-Encoding gzip or none")]
    UnsupportedMediaType,
    #[error("the body could not be read")]
    UnreadableBody,
    #[error("overloaded")]
    Overloaded,
    #[error("too many beacons from this network; slow down")]
    RateLimited,
    #[error("the sink's queue is full")]
    QueueFull,
    #[error("the spool is full")]
    SpoolFull,
    #[error("the spool cannot be written")]
    SpoolFailed,
    #[error("too many open connections")]
    TooManyConnections,
    #[error("internal error")]
    Internal,
    #[error("shutting down")]
    ShuttingDown,
    #[error("no salt is loaded for the current period")]
    NoSalt,
    #[error("request timed out")]
    Timeout,
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::BadBeacon(_) | Rejection::UnreadableBody => StatusCode::BAD_REQUEST,
            Rejection::UnknownSite | Rejection::OriginNotAllowed | Rejection::HostNotAllowed => StatusCode::FORBIDDEN,
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Rejection::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Rejection::Overloaded
            | Rejection::QueueFull
            | Rejection::SpoolFull
            | Rejection::SpoolFailed
            | Rejection::TooManyConnections
            | Rejection::ShuttingDown
            | Rejection::NoSalt
            | Rejection::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A bounded label for metrics and the `reason` of the body.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::BadBeacon(_) => "invalid_beacon",
            Rejection::UnknownSite => "unknown_site",
            Rejection::OriginNotAllowed => "origin_not_allowed",
            Rejection::HostNotAllowed => "host_not_allowed",
            Rejection::MethodNotAllowed { .. } => "method_not_allowed",
            Rejection::NotFound => "not_found",
            Rejection::PayloadTooLarge => "payload_too_large",
            Rejection::UnsupportedMediaType => "unsupported_media_type",
            Rejection::UnreadableBody => "unreadable_body",
            Rejection::Overloaded => "overloaded",
            Rejection::RateLimited => "rate_limited",
            Rejection::QueueFull => "queue_full",
            Rejection::SpoolFull => "spool_full",
            Rejection::SpoolFailed => "spool_error",
            Rejection::TooManyConnections => "too_many_connections",
            Rejection::Internal => "internal_error",
            Rejection::ShuttingDown => "shutting_down",
            Rejection::NoSalt => "no_salt",
            Rejection::Timeout => "timeout",
        }
    }

    /// Seconds a sender should wait before retrying a 503.
    fn retry_after_s(&self) -> Option<u32> {
        match self {
            Rejection::Overloaded | Rejection::Timeout | Rejection::RateLimited | Rejection::TooManyConnections => {
                Some(1)
            }
            Rejection::QueueFull | Rejection::SpoolFull | Rejection::ShuttingDown => Some(5),
            Rejection::SpoolFailed => Some(30),
            Rejection::NoSalt => Some(30),
            _ => None,
        }
    }

    /// `{"error": "...", "field": "...", "reason": "..."}`.
    fn body(&self) -> String {
        let field = match self {
            Rejection::BadBeacon(e) => e.field,
            _ => "",
        };
        serde_json::json!({ "error": self.to_string(), "field": field, "reason": self.reason() }).to_string()
    }

    /// The response, with the body above.
    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(Full::new(Bytes::from(self.body())));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after_s() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Rejection::MethodNotAllowed { allow } = self {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response.extensions_mut().insert(RejectedFor(self.reason()));
        response
    }

    /// The same response as raw HTTP/1.1 bytes that close the connection: for refusals made
    /// before hyper takes a connection.
    pub fn into_raw_http1(self) -> Vec<u8> {
        let status = self.status();
        let body = self.body();
        let retry_after = self.retry_after_s().map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n{retry_after}\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes()
    }

    /// Errors raised by the tower layers (load shedding, timeout, body cap).
    pub fn from_layer_error(error: tower::BoxError) -> Self {
        if let Some(rejection) = error.downcast_ref::<Rejection>() {
            rejection.clone()
        } else if error.is::<tower::load_shed::error::Overloaded>() {
            Rejection::Overloaded
        } else if error.is::<tower::timeout::error::Elapsed>() {
            Rejection::Timeout
        } else {
            tracing::error!(%error, "unexpected service error");
            Rejection::Overloaded
        }
    }
}

impl From<BeaconError> for Rejection {
    fn from(e: BeaconError) -> Self {
        Rejection::BadBeacon(e)
    }
}

impl From<SubmitError> for Rejection {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::QueueFull => Rejection::QueueFull,
            SubmitError::SpoolFull => Rejection::SpoolFull,
            SubmitError::SpoolFailed => Rejection::SpoolFailed,
            SubmitError::Closed => Rejection::ShuttingDown,
        }
    }
}

/// Marks a response as a refusal, for the metrics recorded around the whole service.
#[derive(Debug, Clone, Copy)]
pub struct RejectedFor(pub &'static str);

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
