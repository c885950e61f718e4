//! Typed configuration. [`Config::load`] parses and validates the whole file without any other
//! I/O and reports every bad value with its key; `main` exits before binding a port if any.

use std::{
    collections::HashSet,
    net::SocketAddr,
    num::NonZeroUsize,
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use store::{ClickHouseConfig, ConfigProblem, LoadError, Millis, Seconds, pseudonym::CookieKey};

use beacon::{
    DoNotTrack, Routes,
    enrich::{BotPatterns, ORDINARY_BROWSERS},
};

/// The beacon API's body limit (docs/http-api.md), after decompression too. Not configurable:
/// it is part of the public contract.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The most `sink.max_batch_bytes` may be: a batch spilled to the spool is one record, which
/// the spool reads back only up to twice 1 MiB more (a batch passes its limit by one beacon's
/// rows; the record adds 4 bytes of length per row).
pub const MAX_BATCH_BYTES: usize = 255 * 1024 * 1024;

/// Most `[bots] extra_patterns`, and the longest one in characters.
const MAX_BOT_PATTERNS: usize = 500;
const MAX_BOT_PATTERN_CHARS: usize = 200;
/// Most `[bots] spam_referrers` (a set: the lookup cost does not grow with it).
const MAX_SPAM_REFERRERS: usize = 100_000;
/// Most route templates per site.
const MAX_ROUTES_PER_SITE: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub clickhouse: ClickHouseConfig,
    #[serde(default)]
    pub sink: SinkConfig,
    #[serde(default)]
    pub spool: SpoolConfig,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    #[serde(default)]
    pub salts: SaltsConfig,
    #[serde(default)]
    pub geoip: GeoIpConfig,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub bots: BotsConfig,
    /// The sites this collector accepts beacons for.
    #[serde(default)]
    pub sites: Vec<SiteConfig>,
}

/// Longest `[server] shutdown_drain_ms`: a load balancer notices within seconds.
const MAX_DRAIN_MS: u64 = 60_000;
/// Most `[server] worker_threads`: more than the CPUs only adds switches between them.
const MAX_WORKER_THREADS: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Peers (CIDRs) whose `X-Forwarded-For` / `Forwarded` headers are believed; from anyone
    /// else the peer address is the client address.
    pub trusted_proxies: Vec<IpNet>,
    /// Requests handled at once; more are answered 503 at once rather than queued.
    pub max_concurrent_requests: NonZeroUsize,
    /// Open client connections; a connection beyond it is answered 503 and closed.
    pub max_connections: NonZeroUsize,
    /// Longest wait for a request's headers, in milliseconds: slow clients cannot hold
    /// connections open.
    pub header_read_timeout_ms: Millis,
    /// Time limit for handling one request, in milliseconds.
    pub request_timeout_ms: Millis,
    /// On SIGTERM/SIGINT: how long to finish requests and flush the sink, in milliseconds.
    pub shutdown_timeout_ms: Millis,
    /// On SIGTERM/SIGINT, before that: milliseconds during which `/readyz` answers 503 while
    /// requests are still served, so that a load balancer's health check takes the collector
    /// out before it closes its port. 0: none.
    pub shutdown_drain_ms: u64,
    /// `Cache-Control: max-age` of /script.js, in seconds.
    pub script_max_age_s: u32,
    /// Threads that serve requests and run the sink; 0: one per CPU the process may use.
    pub worker_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 18080)),
            trusted_proxies: Vec::new(),
            max_concurrent_requests: NonZeroUsize::new(4096).expect("non-zero"),
            max_connections: NonZeroUsize::new(10_000).expect("non-zero"),
            header_read_timeout_ms: Millis::new(10_000),
            request_timeout_ms: Millis::new(5_000),
            shutdown_timeout_ms: Millis::new(15_000),
            shutdown_drain_ms: 0,
            worker_threads: 0,
            script_max_age_s: 3_600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// When a beacon is acknowledged (docs/reliability.md): `buffered`, once queued in memory, or
    /// `fsync`, once fsynced in the spool.
    pub durability: Durability,
    /// A table's buffer is inserted at least this often when it holds rows, in milliseconds:
    /// about one insert per second per table at low load.
    pub flush_interval_ms: Millis,
    /// ...or as soon as it holds this many rows: large batches at high load.
    pub max_batch_rows: NonZeroUsize,
    /// ...or this many bytes of encoded rows.
    pub max_batch_bytes: usize,
    /// Beacons waiting between the handlers and the batcher or committer (about 1 KiB each);
    /// when full, beacons get 503. It fills only under backpressure.
    pub queue_capacity: NonZeroUsize,
    /// Batches being inserted or spooled at once (`buffered`); when all are busy the batcher
    /// stops taking from the queue, so memory stays bounded while ClickHouse is slow or down.
    pub max_inflight_batches: NonZeroUsize,
    /// First retry delay after a transient insert error, in milliseconds; doubles per retry.
    pub retry_initial_backoff_ms: Millis,
    /// Longest retry delay, in milliseconds.
    pub retry_max_backoff_ms: Millis,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Buffered,
            flush_interval_ms: Millis::new(1_000),
            max_batch_rows: NonZeroUsize::new(20_000).expect("non-zero"),
            max_batch_bytes: 4 * 1024 * 1024,
            queue_capacity: NonZeroUsize::new(10_000).expect("non-zero"),
            max_inflight_batches: NonZeroUsize::new(4).expect("non-zero"),
            retry_initial_backoff_ms: Millis::new(100),
            retry_max_backoff_ms: Millis::new(10_000),
        }
    }
}

/// When a beacon is acknowledged; see docs/reliability.md.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// 202 once queued in memory: a crash loses at most the last flush interval's beacons.
    #[default]
    Buffered,
    /// 202 once fsynced in the spool (group commit): nothing acknowledged is lost.
    Fsync,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Where batches wait while ClickHouse cannot take them (and, in `fsync` mode, every
    /// beacon before it is acknowledged). Relative paths are relative to this file. One
    /// collector per directory. Holds pseudonymised rows only.
    pub dir: PathBuf,
    /// Largest size of the spool on disk; beyond it beacons get 503. The dead letters
    /// (`dir/dead-letter/`) have a budget of the same size.
    pub max_bytes: u64,
    /// Size at which the `fsync` mode's write-ahead segment is sealed and replayed (it is also
    /// sealed after `sink.flush_interval_ms`).
    pub segment_bytes: u64,
    /// Dead letters older than this many days are deleted: they hold pseudonymised rows, which
    /// must not outlive the troubleshooting retention.
    pub dead_letter_days: u32,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("spool"), max_bytes: 1 << 30, segment_bytes: 4 << 20, dead_letter_days: 14 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Beacons per second accepted from one network prefix (the `[privacy]` prefix lengths:
    /// a /24 or a /48); more get 429. 0 turns the limit off.
    pub beacons_per_second: u32,
    /// Beacons a prefix may send at once above the rate.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { beacons_per_second: 200, burst: 1_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaltsConfig {
    /// How often salts and the blocklist are re-read from ClickHouse, in seconds. Salts whose
    /// period has ended are forgotten at each refresh.
    pub refresh_interval_s: Seconds,
    /// The ClickHouse user that reads them (the `<prefix>_ingest_meta` role); default: the
    /// `[clickhouse]` user.
    pub user: Option<String>,
    /// Name of an environment variable holding that user's password.
    pub password_env: Option<String>,
}

impl Default for SaltsConfig {
    fn default() -> Self {
        Self { refresh_interval_s: Seconds::new(60), user: None, password_env: None }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoIpConfig {
    /// A City or Country MMDB (GeoIP2/GeoLite2 layout or ip-location-db's flat layout).
    /// Relative paths are relative to this file. Without it, location fields stay empty.
    pub location_db: Option<PathBuf>,
    /// An ASN MMDB (GeoLite2-ASN layout). Without it, ASN fields stay empty.
    pub asn_db: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Bits of an IPv4 address kept as the network prefix.
    pub ipv4_prefix_len: u8,
    /// Bits of an IPv6 address kept as the network prefix.
    pub ipv6_prefix_len: u8,
    /// File with the secret behind cookie pseudonyms (at least 32 bytes). Needed only when a
    /// site has `cookie_mode`; takes precedence over `cookie_key_env`.
    pub cookie_key_file: Option<PathBuf>,
    /// Environment variable with the same secret, when there is no `cookie_key_file`.
    pub cookie_key_env: String,
    /// Query parameters kept on every site besides the utm_* ones.
    pub query_allowlist: Vec<String>,
}

impl PrivacyConfig {
    /// The cookie key, through the one reader both binaries share ([`store::read_cookie_key`]).
    pub fn cookie_key(&self) -> Result<CookieKey, ConfigProblem> {
        let material = store::read_cookie_key(self.cookie_key_file.as_deref(), &self.cookie_key_env)?;
        CookieKey::from_material(&material)
            .ok_or_else(|| ConfigProblem::new("privacy.cookie_key_file", "the cookie key must be at least 32 bytes"))
    }
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            ipv4_prefix_len: 24,
            ipv6_prefix_len: 48,
            cookie_key_file: None,
            cookie_key_env: "WEBSTATS_COOKIE_KEY".to_owned(),
            query_allowlist: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotsConfig {
    /// Case-insensitive User-Agent substrings that mark a bot, besides woothee's crawler
    /// category and `beacon::DEFAULT_BOT_PATTERNS`. Bots never enter the audience store.
    pub extra_patterns: Vec<String>,
    /// The maintained bot list: PyPI `crawler-user-agents`' JSON, as scripts/bots.sh fetches
    /// it. Relative paths are relative to this file. Without it, only woothee and the patterns
    /// above tell bots.
    pub list: Option<PathBuf>,
    /// Hosting networks: PyPI `cloudcheck`'s `cloud_providers_v3.json`, as scripts/bots.sh
    /// fetches it; its providers tagged `cloud`. A beacon from one is flagged in the
    /// troubleshooting store (`bot_reason = 'hosting:<provider>'`); `[[sites]] exclude_hosting`
    /// also keeps it out of the audience store. Relative to this file.
    pub hosting: Option<PathBuf>,
    /// Referrer domains that only spam analytics; a domain covers its subdomains. Hits they
    /// refer are bots (`referrer_spam:<domain>`).
    pub spam_referrers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// The `site` value beacons carry.
    pub id: String,
    /// Hosts the site's pages live on: `example.ru` or `*.example.ru`. The page URL's host and
    /// the `Origin` header (when sent) must match one of them.
    pub allowed_hosts: Vec<String>,
    /// Link a browser's visits across days with a first-party cookie (docs/privacy-model.md
    /// section 2). Off by default.
    #[serde(default)]
    pub cookie_mode: bool,
    /// The first-party cookie holding the visitor's random id in cookie mode; read when the
    /// beacon has no `sid` (the collector shares the site's domain).
    #[serde(default = "default_cookie_name")]
    pub cookie_name: String,
    /// Lifetime of that cookie, in days, as the snippet sets it (at most 395: 13 months).
    #[serde(default = "default_cookie_days")]
    pub cookie_days: u32,
    /// What to do with beacons carrying `DNT: 1` or `Sec-GPC: 1`.
    #[serde(default)]
    pub do_not_track: DoNotTrack,
    /// Query parameters kept for this site besides the global ones.
    #[serde(default)]
    pub query_allowlist: Vec<String>,
    /// Route templates such as `/accounts/:id/bills`: a `:name` segment matches any one
    /// segment, and a page or same-site referrer path that matches is stored as the template.
    /// They take precedence over the identifier heuristics (see `urls`).
    #[serde(default)]
    pub routes: Routes,
    /// Event property keys kept; empty keeps every key (docs/privacy-model.md section 4).
    #[serde(default)]
    pub prop_allowlist: Vec<String>,
    /// Store only an error message's template: quoted strings and numbers collapsed.
    #[serde(default)]
    pub error_templates: bool,
    /// Patterns of the bot list (`[bots] list`), written as in the list, that do not make a
    /// bot on this site: its false positives, such as the site's own app.
    #[serde(default)]
    pub bot_exclusions: Vec<String>,
    /// Count POST beacons that come without an `Origin` header, which browsers always send:
    /// for a site that sends beacons from its servers or an app. Off: they are bots
    /// (`transport:no_origin`).
    #[serde(default)]
    pub count_without_origin: bool,
    /// Beacons from hosting networks (`[bots] hosting`) are bots on this site, not only
    /// flagged: for a site no person visits through a cloud server or a corporate VPN there.
    #[serde(default)]
    pub exclude_hosting: bool,
}

fn default_cookie_name() -> String {
    "_wsid".to_owned()
}

fn default_cookie_days() -> u32 {
    365
}

/// The longest cookie lifetime a site may set: 13 months, the usual ceiling for audience
/// measurement cookies.
const MAX_COOKIE_DAYS: u32 = 395;

impl SiteConfig {
    /// `bot_exclusions` as indices of the loaded bot list, or the first that is not in it.
    pub fn bot_exclusion_indices(&self, agents: &beacon::AgentParser) -> Result<Vec<u16>, String> {
        let index = |p: &String| {
            agents.list_index(p).ok_or_else(|| {
                format!(
                    "sites[id = {:?}].bot_exclusions: {p:?} is not a pattern of the bot list ([bots] list)",
                    self.id
                )
            })
        };
        self.bot_exclusions.iter().map(index).collect()
    }

    /// The site as the pipeline sees it, with `query_allowlist` kept besides its own, or the
    /// first of its `bot_exclusions` that is not a pattern of the loaded bot list.
    pub fn rules(&self, query_allowlist: &[String], agents: &beacon::AgentParser) -> Result<beacon::Site, String> {
        let bot_exclusions = self.bot_exclusion_indices(agents)?;
        Ok(beacon::Site {
            id: self.id.clone(),
            allowed_hosts: self.allowed_hosts.clone(),
            cookie_mode: self.cookie_mode,
            do_not_track: self.do_not_track,
            query_allowlist: query_allowlist.iter().chain(&self.query_allowlist).cloned().collect(),
            routes: self.routes.clone(),
            prop_allowlist: self.prop_allowlist.clone(),
            error_templates: self.error_templates,
            bots: beacon::BotPolicy {
                bot_exclusions,
                count_without_origin: self.count_without_origin,
                exclude_hosting: self.exclude_hosting,
            },
        })
    }
}

impl Config {
    /// Reads, parses and validates; relative paths are resolved against the file's folder.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        store::load_toml(path, "collector", |config: &mut Config| {
            config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
            config.problems()
        })
    }

    fn resolve_paths(&mut self, base: &Path) {
        let optional = [
            &mut self.geoip.location_db,
            &mut self.geoip.asn_db,
            &mut self.privacy.cookie_key_file,
            &mut self.bots.list,
            &mut self.bots.hosting,
        ];
        for path in optional.into_iter().flatten().chain([&mut self.spool.dir]) {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// Every bad value, each with the key that holds it. Pure but for reading environment
    /// variables named by the config.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut p = |key: &str, message: &str| problems.push(ConfigProblem::new(key, message));

        if self.server.worker_threads > MAX_WORKER_THREADS {
            p("server.worker_threads", &format!("must be at most {MAX_WORKER_THREADS}"));
        }
        if self.server.shutdown_drain_ms > MAX_DRAIN_MS {
            p("server.shutdown_drain_ms", &format!("must be at most {MAX_DRAIN_MS}"));
        }
        let k = &self.sink;
        if !(1024..=MAX_BATCH_BYTES).contains(&k.max_batch_bytes) {
            p("sink.max_batch_bytes", &format!("must be between 1024 and {MAX_BATCH_BYTES}"));
        }
        if k.retry_initial_backoff_ms > k.retry_max_backoff_ms {
            p("sink.retry_initial_backoff_ms", "must be at most sink.retry_max_backoff_ms");
        }
        let sp = &self.spool;
        if sp.dir.as_os_str().is_empty() {
            p("spool.dir", "must name a directory");
        }
        if sp.segment_bytes < 16 * 1024 {
            p("spool.segment_bytes", "must be at least 16384");
        }
        if sp.max_bytes < sp.segment_bytes {
            p("spool.max_bytes", "must be at least spool.segment_bytes");
        }
        if !(1..=366).contains(&sp.dead_letter_days) {
            p("spool.dead_letter_days", "must be between 1 and 366");
        }
        let r = &self.rate_limit;
        if r.beacons_per_second > 0 && r.burst == 0 {
            p("rate_limit.burst", "must be above 0 when the rate limit is on");
        }
        if self.salts.refresh_interval_s.get() > 3_600 {
            p("salts.refresh_interval_s", "must be at most 3600");
        }

        for (key, path) in [("geoip.location_db", &self.geoip.location_db), ("geoip.asn_db", &self.geoip.asn_db)] {
            if let Some(path) = path.as_ref().filter(|path| !path.is_file()) {
                p(key, &format!("{} is not a readable file", path.display()));
            }
        }

        let pr = &self.privacy;
        if !(8..=32).contains(&pr.ipv4_prefix_len) {
            p("privacy.ipv4_prefix_len", "must be between 8 and 32");
        }
        if !(16..=128).contains(&pr.ipv6_prefix_len) {
            p("privacy.ipv6_prefix_len", "must be between 16 and 128");
        }
        check_param_names("privacy.query_allowlist", &pr.query_allowlist, &mut p);

        if self.sites.is_empty() {
            p("sites", "at least one [[sites]] entry is needed");
        }
        let mut ids = HashSet::new();
        for (i, site) in self.sites.iter().enumerate() {
            let key = |field: &str| format!("sites[{i}].{field}");
            if site.id.is_empty()
                || site.id.len() > 64
                || !site.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                p(&key("id"), "must be 1 to 64 letters, digits, '-', '_' or '.'");
            } else if !ids.insert(site.id.as_str()) {
                p(&key("id"), &format!("{:?} is used by another site", site.id));
            }
            if site.allowed_hosts.is_empty() {
                p(&key("allowed_hosts"), "list at least one host");
            }
            for host in &site.allowed_hosts {
                let bare = host.strip_prefix("*.").unwrap_or(host);
                if bare.is_empty() || bare.contains(['/', ':', '*', ' ']) || bare != bare.to_ascii_lowercase() {
                    p(
                        &key("allowed_hosts"),
                        &format!("{host:?} is not a lower-case host name (optionally starting with '*.')"),
                    );
                }
            }
            if site.cookie_name.is_empty()
                || !site.cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                p(&key("cookie_name"), "must be letters, digits, '_' or '-'");
            }
            if !(1..=MAX_COOKIE_DAYS).contains(&site.cookie_days) {
                p(&key("cookie_days"), &format!("must be between 1 and {MAX_COOKIE_DAYS}"));
            }
            check_param_names(&key("query_allowlist"), &site.query_allowlist, &mut p);
            for name in &site.prop_allowlist {
                if name.is_empty() || name.chars().count() > beacon::FreeText::PropKey.max_chars() {
                    p(&key("prop_allowlist"), &format!("{name:?} is not a property key (1 to 100 characters)"));
                }
            }
            if site.routes.listed() > MAX_ROUTES_PER_SITE {
                p(&key("routes"), &format!("at most {MAX_ROUTES_PER_SITE} templates per site"));
            }
            for problem in site.routes.problems() {
                p(&key("routes"), problem);
            }
        }

        let patterns = &self.bots.extra_patterns;
        if patterns.len() > MAX_BOT_PATTERNS {
            p("bots.extra_patterns", &format!("at most {MAX_BOT_PATTERNS} patterns"));
        }
        for pattern in patterns {
            if pattern.trim().is_empty() {
                p("bots.extra_patterns", &format!("{pattern:?}: a pattern must not be empty or white space"));
            } else if pattern.chars().count() > MAX_BOT_PATTERN_CHARS {
                let start: String = pattern.chars().take(40).collect();
                p(
                    "bots.extra_patterns",
                    &format!("{start:?}...: a pattern has at most {MAX_BOT_PATTERN_CHARS} characters"),
                );
            } else if let Some(browser) = ORDINARY_BROWSERS.iter().find(|b| BotPatterns::new(&[pattern]).matches(b)) {
                p(
                    "bots.extra_patterns",
                    &format!(
                        "{pattern:?} matches an ordinary browser ({browser}), so every visitor would count as a bot"
                    ),
                );
            }
        }

        if self.bots.spam_referrers.len() > MAX_SPAM_REFERRERS {
            p("bots.spam_referrers", &format!("at most {MAX_SPAM_REFERRERS} domains"));
        }
        for domain in &self.bots.spam_referrers {
            if !is_domain(domain) {
                p("bots.spam_referrers", &format!("{domain:?} is not a domain name such as \"darodar.com\""));
            }
        }
        if self.bots.hosting.is_none() {
            for site in self.sites.iter().filter(|s| s.exclude_hosting) {
                p(&format!("sites[id = {:?}].exclude_hosting", site.id), "needs the hosting list ([bots] hosting)");
            }
        }

        if self.sites.iter().any(|s| s.cookie_mode)
            && let Err(problem) = self.privacy.cookie_key()
        {
            p(&problem.key, &problem.message);
        }
        if let Some(var) = &self.salts.password_env
            && std::env::var_os(var).is_none()
        {
            p("salts.password_env", &format!("environment variable {var} is not set"));
        }

        self.clickhouse.validate(&mut problems);
        problems
    }
}

/// A host name as URLs carry it (IDNs in punycode): dot-separated labels of letters, digits
/// and hyphens, at least two of them.
fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.trim_end_matches('.').split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

fn check_param_names(key: &str, names: &[String], p: &mut impl FnMut(&str, &str)) {
    for name in names {
        if name.is_empty() || name.len() > 64 || name.contains(['&', '=', '#', ' ']) {
            p(key, &format!("{name:?} is not a query parameter name"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    /// Every problem of a config text: of types, then of values.
    fn problems(text: &str) -> Vec<ConfigProblem> {
        let (config, mut problems) = store::parse_toml::<Config>(text).unwrap();
        problems.extend(config.expect("every bad key could be removed").problems());
        problems
    }

    #[test]
    fn minimal_config_is_valid_with_defaults() {
        let c = parse("[[sites]]\nid = \"portal\"\nallowed_hosts = [\"lk.example.ru\"]\n");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(c.sink.flush_interval_ms, Millis::new(1_000));
        assert_eq!(c.sites[0].do_not_track, DoNotTrack::Anonymous);
        assert!(!c.sites[0].cookie_mode);
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let problems = problems(
            "[sink]\nflush_interval_ms = 0\nqueue_capacity = 0\n[server]\nmax_connections = 0\nshutdown_drain_ms = 60001\nworker_threads = 5000\n\
             [privacy]\nipv4_prefix_len = 40\n\
             [clickhouse]\ndatabase_prefix = \"Bad-Prefix\"\nrequest_timeout_ms = 0\n\
             [[sites]]\nid = \"a b\"\nallowed_hosts = []\ncookie_mode = true\ncookie_days = 400\n",
        );
        let keys: Vec<_> = problems.into_iter().map(|p| p.key).collect();
        for key in [
            "sink.flush_interval_ms",
            "sink.queue_capacity",
            "server.max_connections",
            "server.shutdown_drain_ms",
            "server.worker_threads",
            "clickhouse.request_timeout_ms",
            "privacy.ipv4_prefix_len",
            "clickhouse.database_prefix",
            "sites[0].id",
            "sites[0].allowed_hosts",
            "sites[0].cookie_days",
            "privacy.cookie_key_file",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
    }

    #[test]
    fn rejects_unknown_keys() {
        assert!(toml::from_str::<Config>("[server]\nlisten_addr = \"x\"\n").is_err());
    }

    #[test]
    fn reports_bad_route_templates_and_bot_patterns() {
        let routes: Vec<String> = (0..65).map(|i| format!("\"/r{i}/:id\"")).collect();
        let c = parse(&format!(
            "[bots]\nextra_patterns = [\"\", \" \", \"{}\", \"Mozilla\", \"python-requests\"]\n\
             [[sites]]\nid = \"a\"\nallowed_hosts = [\"a.ru\"]\nroutes = [\"accounts/:id\", \"/a//b\", \"/ok/:id\"]\n\
             [[sites]]\nid = \"b\"\nallowed_hosts = [\"b.ru\"]\nroutes = [{}]\n",
            "x".repeat(201),
            routes.join(", ")
        ));
        let problems: Vec<_> = c.problems().into_iter().map(|p| (p.key, p.message)).collect();
        let count = |key: &str| problems.iter().filter(|(k, _)| k == key).count();
        assert_eq!(count("bots.extra_patterns"), 4, "{problems:?}");
        assert_eq!(count("sites[0].routes"), 2, "{problems:?}");
        assert_eq!(count("sites[1].routes"), 1, "{problems:?}");
        assert_eq!(problems.len(), 7, "{problems:?}");
    }

    #[test]
    fn batches_fit_in_a_spool_record() {
        let c = parse(&format!(
            "[sink]\nmax_batch_bytes = {}\n[[sites]]\nid = \"a\"\nallowed_hosts = [\"a.ru\"]\n",
            MAX_BATCH_BYTES + 1
        ));
        assert_eq!(c.problems()[0].key, "sink.max_batch_bytes");
    }

    #[test]
    fn rejects_duplicate_site_ids() {
        let c = parse(
            "[[sites]]\nid = \"a\"\nallowed_hosts = [\"a.ru\"]\n[[sites]]\nid = \"a\"\nallowed_hosts = [\"b.ru\"]\n",
        );
        assert_eq!(c.problems()[0].key, "sites[1].id");
    }

    #[test]
    fn the_reference_lists_every_key_and_no_other() {
        let site = "[[sites]]\nid = \"a\"\nallowed_hosts = [\"a.ru\"]\n";
        let keys = store::reference::keys(&serde_json::to_value(parse(site)).unwrap());
        let reference = include_str!("../../docs/configuration.md");
        assert_eq!(store::reference::documented(reference, "Collector"), keys, "docs/configuration.md, Collector");
    }
}
