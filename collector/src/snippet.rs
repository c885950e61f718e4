//! `/script.js`: the snippet, embedded at build time, served with an ETag, a cache lifetime
//! and a gzip variant compressed once at start-up.

use std::io::Write;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::respond::Body;

const SOURCE: &str = include_str!("../../snippet/script.js");

pub struct Snippet {
    plain: Bytes,
    gzip: Bytes,
    etag: HeaderValue,
    cache_control: HeaderValue,
}

impl Snippet {
    pub fn new(max_age_s: u32) -> Self {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(SOURCE.as_bytes()).expect("writing to a Vec cannot fail");
        let gzip = encoder.finish().expect("writing to a Vec cannot fail");
        let hash = blake3::hash(SOURCE.as_bytes()).to_hex();
        Self {
            plain: Bytes::from_static(SOURCE.as_bytes()),
            gzip: gzip.into(),
            etag: HeaderValue::from_str(&format!("\"{}\"", &hash[..16])).expect("hex is a valid header"),
            cache_control: HeaderValue::from_str(&format!("public, max-age={max_age_s}")).expect("valid header"),
        }
    }

    pub fn respond(&self, request_headers: &HeaderMap) -> Response<Body> {
        let not_modified = request_headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|t| t.trim() == self.etag || t.trim() == "*"));
        let gzip = request_headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
        let (status, body) = match (not_modified, gzip) {
            (true, _) => (StatusCode::NOT_MODIFIED, Bytes::new()),
            (false, true) => (StatusCode::OK, self.gzip.clone()),
            (false, false) => (StatusCode::OK, self.plain.clone()),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/javascript; charset=utf-8"));
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(header::CACHE_CONTROL, self.cache_control.clone());
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        if gzip && !not_modified {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}
