//! Taking a parsed beacon in: the domain work between the HTTP layer and the sink. It checks
//! the site, the `Origin` and the page's host, takes the salt keys and the blocklist of the
//! moment, runs the pure pipeline (`beacon::Pipeline`), encodes the rows once and hands them to
//! the sink, and counts the outcome. HTTP only brings the client's address and the headers.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use beacon::{Beacon, Controls, Outcome, Pipeline, RequestFacts, urls};
use http::{HeaderMap, HeaderValue, header};

use crate::{
    config::SiteConfig,
    control::Control,
    metrics::{CacheResult, DropReason, Metrics, SiteCounters},
    refusal::Rejection,
    sink::{EncodedBeacon, SinkHandle},
};

/// A site as ingest needs it: the pipeline's view, and where its cookie is.
struct Site {
    rules: beacon::Site,
    cookie_name: String,
    counters: SiteCounters,
}

/// What the HTTP layer learnt of a beacon's request besides its body.
#[derive(Clone, Copy)]
pub struct Arrival<'a> {
    /// The client's address (`trusted_proxies` applied).
    pub ip: IpAddr,
    pub headers: &'a HeaderMap,
    /// A POST (`/api/event`) rather than the GIF's GET.
    pub post: bool,
}

pub struct Ingest {
    sites: HashMap<String, Site>,
    pipeline: Pipeline,
    control: Arc<Control>,
    sink: SinkHandle,
    metrics: Arc<Metrics>,
    /// Unix seconds; a function, so that tests control time.
    clock: fn() -> u32,
    stopping: AtomicBool,
    /// Told to stop, still serving: see [`Self::drain`].
    draining: AtomicBool,
}

impl Ingest {
    /// `query_allowlist` is kept on every site, besides each site's own.
    pub fn new(
        sites: &[SiteConfig],
        query_allowlist: &[String],
        pipeline: Pipeline,
        control: Arc<Control>,
        sink: SinkHandle,
        metrics: Arc<Metrics>,
        clock: fn() -> u32,
    ) -> Result<Self, String> {
        let sites = sites
            .iter()
            .map(|site| {
                let rules = site.rules(query_allowlist, &pipeline.agents)?;
                let counters = metrics.site_counters(&site.id);
                Ok((site.id.clone(), Site { rules, cookie_name: site.cookie_name.clone(), counters }))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            sites,
            pipeline,
            control,
            sink,
            metrics,
            clock,
            stopping: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        })
    }

    /// Checks, pseudonymises, encodes and hands the rows to the sink; in `fsync` mode returns
    /// once they are on disk. A dropped beacon (DNT in `drop` mode, a blocked person) is
    /// accepted like any other: the response reveals nothing.
    pub async fn accept(&self, beacon: Beacon, arrival: Arrival<'_>) -> Result<(), Rejection> {
        let site = self.sites.get(&beacon.site).ok_or(Rejection::UnknownSite)?;
        let headers = arrival.headers;
        if let Some(origin) = headers.get(header::ORIGIN)
            && !origin_host(origin).is_some_and(|host| host_allowed(&site.rules, &host))
        {
            return Err(Rejection::OriginNotAllowed);
        }
        if !beacon.url.host_str().is_some_and(|host| host_allowed(&site.rules, host)) {
            return Err(Rejection::HostNotAllowed);
        }

        let now = (self.clock)();
        let salts = self.control.salts.load();
        let keys = salts.keys_at(now).ok_or(Rejection::NoSalt)?;
        let blocklist = self.control.blocklist.load();
        let facts = RequestFacts {
            ip: arrival.ip,
            user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default(),
            cookie: site.rules.cookie_mode.then(|| cookie_value(headers, &site.cookie_name)).flatten(),
            do_not_track: beacon.do_not_track || header_is_one(headers, "dnt") || header_is_one(headers, "sec-gpc"),
            received_at: now,
            post_without_origin: arrival.post && !headers.contains_key(header::ORIGIN),
        };
        let kind = beacon.kind.0;
        let outcome = self.pipeline.process(beacon, facts, &site.rules, Controls { keys, blocklist: &blocklist });
        // Guards of the salts and blocklist must not be held across the wait in `fsync` mode.
        drop((salts, blocklist));
        let dropped = |reason: DropReason| site.counters.dropped(reason).inc();
        match outcome {
            Outcome::Store { rows, bot, ua_cache_hit } => {
                self.sink.submit(EncodedBeacon::encode(rows)).await?;
                let cache = if ua_cache_hit { CacheResult::Hit } else { CacheResult::Miss };
                self.metrics.ua_cache_lookups(cache).inc();
                if let Some(signal) = bot {
                    self.metrics.bot_hits.with_label_values(&[signal.label()]).inc();
                }
            }
            Outcome::DroppedDoNotTrack => dropped(DropReason::DoNotTrack),
            Outcome::DroppedBlocked => dropped(DropReason::Blocked),
        }
        site.counters.accepted(kind).inc();
        Ok(())
    }

    /// Whether `origin` is an allowed host of any site: a CORS preflight's question.
    pub fn allows_origin(&self, origin: &HeaderValue) -> bool {
        origin_host(origin).is_some_and(|host| self.sites.values().any(|site| host_allowed(&site.rules, &host)))
    }

    /// `/readyz`: not stopping, salts for now loaded, and the sink taking work.
    pub fn readiness(&self) -> Result<(), Rejection> {
        if self.is_stopping() || self.draining.load(Ordering::Relaxed) {
            return Err(Rejection::ShuttingDown);
        }
        if self.control.salts.load().keys_at((self.clock)()).is_none() {
            return Err(Rejection::NoSalt);
        }
        self.sink.refuses_work().map_or(Ok(()), |refusal| Err(Rejection::Sink(refusal)))
    }

    /// From now on `/readyz` says the collector is shutting down; beacons are still taken
    /// (`[server] shutdown_drain_ms`).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// From now on, beacons are refused and `/readyz` says so.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// `host` matches `example.ru` exactly or `*.example.ru` for any subdomain.
fn host_allowed(site: &beacon::Site, host: &str) -> bool {
    urls::host_matches(&site.allowed_hosts, &host.trim_end_matches('.').to_ascii_lowercase())
}

/// The host of an `Origin` header; `None` for `null` or anything unparsable.
fn origin_host(origin: &HeaderValue) -> Option<String> {
    url::Url::parse(origin.to_str().ok()?).ok()?.host_str().map(str::to_owned)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_exact_and_wildcard_hosts() {
        let site = beacon::Site { allowed_hosts: vec!["a.ru".into(), "*.b.ru".into()], ..beacon::Site::default() };
        assert!(host_allowed(&site, "a.ru"));
        assert!(host_allowed(&site, "A.RU."));
        assert!(host_allowed(&site, "lk.b.ru"));
        assert!(!host_allowed(&site, "b.ru"));
        assert!(!host_allowed(&site, "evilb.ru"));
        assert!(!host_allowed(&site, "a.ru.evil.com"));
    }

    #[test]
    fn reads_the_named_cookie_only() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "x=1; _wsid=abc; y=2".parse().unwrap());
        assert_eq!(cookie_value(&h, "_wsid"), Some("abc"));
        assert_eq!(cookie_value(&h, "z"), None);
    }
}
