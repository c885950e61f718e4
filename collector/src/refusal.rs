//! Every reason a request is refused, and the one table that maps each to its status, its
//! machine-readable reason (the error body's `reason` and the metrics label) and its
//! Retry-After (docs/http-api.md, "Errors"). `http::respond` turns a refusal into a response.

use std::borrow::Cow;

use beacon::BeaconError;
use http::StatusCode;

use crate::sink::SubmitError;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    BadBeacon(BeaconError),
    UnknownSite,
    OriginNotAllowed,
    HostNotAllowed,
    MethodNotAllowed {
        allow: &'static str,
    },
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    UnreadableBody,
    Overloaded,
    RateLimited,
    /// The sink takes no more work: its queue or the spool is full, the spool failed, or it
    /// is closing.
    Sink(SubmitError),
    TooManyConnections,
    Internal,
    ShuttingDown,
    NoSalt,
    Timeout,
}

/// A refusal as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: &'static str,
    /// Seconds a sender should wait before retrying (503s and 429).
    pub retry_after_s: Option<u32>,
    /// The `error` of the body, unless the refusal carries its own message.
    pub message: &'static str,
}

const fn refusal(
    status: StatusCode,
    reason: &'static str,
    retry_after_s: Option<u32>,
    message: &'static str,
) -> Refusal {
    Refusal { status, reason, retry_after_s, message }
}

impl Rejection {
    /// The table.
    pub fn refusal(&self) -> Refusal {
        use StatusCode as S;
        match self {
            Rejection::BadBeacon(_) => refusal(S::BAD_REQUEST, "invalid_beacon", None, "invalid beacon"),
            Rejection::UnknownSite => refusal(S::FORBIDDEN, "unknown_site", None, "unknown site"),
            Rejection::OriginNotAllowed => {
                refusal(S::FORBIDDEN, "origin_not_allowed", None, "Origin is not an allowed host of the site")
            }
            Rejection::HostNotAllowed => {
                refusal(S::FORBIDDEN, "host_not_allowed", None, "the page's host is not an allowed host of the site")
            }
            Rejection::MethodNotAllowed { .. } => {
                refusal(S::METHOD_NOT_ALLOWED, "method_not_allowed", None, "method not allowed")
            }
            Rejection::NotFound => refusal(S::NOT_FOUND, "not_found", None, "not found"),
            Rejection::PayloadTooLarge => {
                refusal(S::PAYLOAD_TOO_LARGE, "payload_too_large", None, "body larger than 16 KiB")
            }
            Rejection::UnsupportedMediaType => refusal(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
                "Content-Type must be text/plain or application/json, Content-Encoding gzip or none",
            ),
            Rejection::UnreadableBody => refusal(S::BAD_REQUEST, "unreadable_body", None, "the body could not be read"),
            Rejection::Overloaded => refusal(S::SERVICE_UNAVAILABLE, "overloaded", Some(1), "overloaded"),
            Rejection::RateLimited => {
                refusal(S::TOO_MANY_REQUESTS, "rate_limited", Some(1), "too many beacons from this network; slow down")
            }
            Rejection::Sink(SubmitError::QueueFull) => {
                refusal(S::SERVICE_UNAVAILABLE, "queue_full", Some(5), "the sink's queue is full")
            }
            Rejection::Sink(SubmitError::SpoolFull) => {
                refusal(S::SERVICE_UNAVAILABLE, "spool_full", Some(5), "the spool is full")
            }
            Rejection::Sink(SubmitError::SpoolFailed) => {
                refusal(S::SERVICE_UNAVAILABLE, "spool_error", Some(30), "the spool cannot be written")
            }
            Rejection::Sink(SubmitError::Closed) | Rejection::ShuttingDown => {
                refusal(S::SERVICE_UNAVAILABLE, "shutting_down", Some(5), "shutting down")
            }
            Rejection::TooManyConnections => {
                refusal(S::SERVICE_UNAVAILABLE, "too_many_connections", Some(1), "too many open connections")
            }
            Rejection::Internal => refusal(S::INTERNAL_SERVER_ERROR, "internal_error", None, "internal error"),
            Rejection::NoSalt => {
                refusal(S::SERVICE_UNAVAILABLE, "no_salt", Some(30), "no salt is loaded for the current period")
            }
            Rejection::Timeout => refusal(S::SERVICE_UNAVAILABLE, "timeout", Some(1), "request timed out"),
        }
    }

    /// The `error` of the body: the beacon's own message for a bad beacon.
    pub fn message(&self) -> Cow<'static, str> {
        match self {
            Rejection::BadBeacon(error) => Cow::Owned(error.message.clone()),
            other => Cow::Borrowed(other.refusal().message),
        }
    }

    /// The `field` of the body: which beacon field was wrong, or empty.
    pub fn field(&self) -> &'static str {
        match self {
            Rejection::BadBeacon(error) => error.field,
            _ => "",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Rejection {}

impl From<BeaconError> for Rejection {
    fn from(error: BeaconError) -> Self {
        Rejection::BadBeacon(error)
    }
}

impl From<SubmitError> for Rejection {
    fn from(error: SubmitError) -> Self {
        Rejection::Sink(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_503_says_when_to_retry_and_reasons_are_unique() {
        let all = [
            Rejection::BadBeacon(BeaconError { field: "url", message: "bad".into() }),
            Rejection::UnknownSite,
            Rejection::OriginNotAllowed,
            Rejection::HostNotAllowed,
            Rejection::MethodNotAllowed { allow: "GET" },
            Rejection::NotFound,
            Rejection::PayloadTooLarge,
            Rejection::UnsupportedMediaType,
            Rejection::UnreadableBody,
            Rejection::Overloaded,
            Rejection::RateLimited,
            Rejection::Sink(SubmitError::QueueFull),
            Rejection::Sink(SubmitError::SpoolFull),
            Rejection::Sink(SubmitError::SpoolFailed),
            Rejection::TooManyConnections,
            Rejection::Internal,
            Rejection::ShuttingDown,
            Rejection::NoSalt,
            Rejection::Timeout,
        ];
        let mut reasons: Vec<&str> = all.iter().map(|r| r.refusal().reason).collect();
        for r in &all {
            let refusal = r.refusal();
            if refusal.status == StatusCode::SERVICE_UNAVAILABLE {
                assert!(refusal.retry_after_s.is_some(), "{r:?}");
            }
        }
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
        assert_eq!(Rejection::Sink(SubmitError::Closed).refusal(), Rejection::ShuttingDown.refusal());
        assert_eq!(all[0].to_string(), "bad");
    }
}
