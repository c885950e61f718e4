//! `/script.js`: the snippet, embedded at build time (`snippet/script.min.js`, minified from
//! `snippet/script.js` by `scripts/snippet.sh`), with each site's settings filled in at
//! start-up, served with an ETag, a cache lifetime and a gzip variant compressed once.

use std::io::Write;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use super::respond::Body;

use beacon::DoNotTrack;

use crate::config::SiteConfig;

const SOURCE: &str = include_str!("../../../snippet/script.min.js");
/// Where the per-site table goes: a free identifier in the snippet, which the minifier keeps.
const SITES_PLACEHOLDER: &str = "__WEBSTATS_SITES__";
/// The snippet's budget, gzipped.
#[cfg(test)]
const MAX_GZIP_BYTES: usize = 2176;

pub struct Snippet {
    plain: Bytes,
    gzip: Bytes,
    etag: HeaderValue,
    cache_control: HeaderValue,
}

impl Snippet {
    pub fn new(max_age_s: u32, sites: &[SiteConfig]) -> Self {
        let script = render(sites);
        let gzip = gzip(script.as_bytes());
        let hash = blake3::hash(script.as_bytes()).to_hex();
        Self {
            plain: Bytes::from(script),
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

/// The snippet with the sites' settings in place of [`SITES_PLACEHOLDER`]: per site id, the
/// cookie name (empty unless cookie mode is on), the cookie lifetime in days, and 1 if beacons
/// under DNT/GPC are dropped (then the snippet sends none) or 0 if they are counted anonymously.
fn render(sites: &[SiteConfig]) -> String {
    let table: serde_json::Map<String, serde_json::Value> = sites
        .iter()
        .map(|site| {
            let cookie = if site.cookie_mode { site.cookie_name.as_str() } else { "" };
            let drop = u8::from(site.do_not_track == DoNotTrack::Drop);
            (site.id.clone(), serde_json::json!([cookie, site.cookie_days, drop]))
        })
        .collect();
    SOURCE.replacen(SITES_PLACEHOLDER, &serde_json::Value::Object(table).to_string(), 1)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(n: usize) -> Vec<SiteConfig> {
        (0..n)
            .map(|i| {
                toml::from_str(&format!(
                    "id = \"portal-{i}\"\nallowed_hosts = [\"lk{i}.example.ru\"]\ncookie_mode = {}\ndo_not_track = \"drop\"\n",
                    i % 2 == 0
                ))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_placeholder_is_there_once_and_replaced_by_the_sites() {
        assert_eq!(SOURCE.matches(SITES_PLACEHOLDER).count(), 1);
        let script = render(&sites(2));
        assert!(!script.contains(SITES_PLACEHOLDER));
        assert!(script.contains(r#"{"portal-0":["_wsid",365,1],"portal-1":["",365,1]}"#), "{script}");
    }

    #[test]
    fn the_snippet_stays_within_two_kilobytes_gzipped() {
        // Three sites, as a small installation has.
        let size = gzip(render(&sites(3)).as_bytes()).len();
        assert!(size <= MAX_GZIP_BYTES, "the snippet is {size} bytes gzipped; the budget is {MAX_GZIP_BYTES}");
    }
}
