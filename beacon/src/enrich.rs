//! Enrichment: User-Agent parsing (woothee behind a bounded cache) and GeoIP/ASN lookups
//! (maxminddb, databases held in memory, answers cached by network prefix). No I/O after
//! start-up and no failure on bad input: an unknown agent or address yields empty fields.
//!
//! An agent is a bot when woothee files it as a crawler or when it contains one of the bot
//! patterns ([`DEFAULT_BOT_PATTERNS`] and `[bots] extra_patterns`, case-insensitive
//! substrings), or the maintained list (`crate::bots`, `[bots] list`). Both checks
//! run once per distinct User-Agent, inside the cached parse, so the hot path never matches
//! patterns.

use std::{net::IpAddr, path::Path, sync::Arc};

use maxminddb::{LookupResult, Reader};
use store::pseudonym::{canonical, network};

use crate::bots::BotList;
use serde::Deserialize;

/// What is kept of a User-Agent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Agent {
    pub browser: String,
    /// Major version only: the full version adds entropy and no insight.
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    /// woothee's category: pc, smartphone, mobilephone, appliance, crawler, misc; empty if unknown.
    pub device: String,
    /// Why it is a bot whatever the list says, as recorded in `bot_reason`: `crawler:<name>`
    /// (woothee's crawler category) or `pattern:<pattern>` (a bot pattern, lower case).
    pub bot_besides_list: Option<Box<str>>,
    /// The bot list's patterns that match it (`BotList::index_of`).
    pub list_matches: Box<[u16]>,
}

impl Agent {
    /// woothee's crawler category, a bot pattern or the bot list, on a site that excludes no
    /// list pattern (what a site counts is `signals::Signals::verdict`'s to say).
    pub fn is_bot(&self) -> bool {
        self.bot_besides_list.is_some() || !self.list_matches.is_empty()
    }

    /// The first list pattern that matches it and that a site with `excluded` counts.
    pub fn first_list_match(&self, excluded: &[u16]) -> Option<u16> {
        self.list_matches.iter().copied().find(|m| !excluded.contains(m))
    }
}

/// User-Agent substrings (case-insensitive) that always mark a bot besides woothee's crawler
/// category; `[bots] extra_patterns` adds to them. Word-ish on purpose:
/// a bare `bot` would also match the Cubot phone brand, so a bot's product name is recognised
/// by what ends it (`bot/`, `bot;`, `bot)`) or by the `+http` link that self-declared crawlers
/// carry. None matches an ordinary browser ([`ORDINARY_BROWSERS`]).
pub const DEFAULT_BOT_PATTERNS: [&str; 24] = [
    // Self-declared crawlers: "(compatible; SomeBot/1.0; +http://example.com/bot)".
    "bot/",
    "bot;",
    "bot)",
    "+http",
    "spider",
    "crawl",
    "slurp",
    // Headless and audit browsers.
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    // HTTP libraries and command-line tools: no person behind them runs the snippet.
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "apache-httpclient",
    "node-fetch",
    "axios/",
    "libwww-perl",
    "scrapy",
];

/// Ordinary browsers, as the e2e tests send them. No bot pattern may match one of them:
/// config validation refuses such a pattern, and the tests check the defaults.
pub const ORDINARY_BROWSERS: [&str; 7] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 YaBrowser/23.11.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
    // Cubot is a phone brand: a bare "bot" pattern would make its owners bots.
    "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36",
];

/// Substrings that mark a User-Agent as a bot, compared ignoring ASCII case. They are
/// filed by their first byte, so a match is one pass over the agent that compares only the
/// patterns starting with the byte at hand: the cost hardly grows with the number of patterns.
#[derive(Debug, Clone, Default)]
pub struct BotPatterns {
    /// 256 lists, one per lower-case first byte, or none when there are no patterns.
    by_first_byte: Vec<Vec<Box<str>>>,
}

impl BotPatterns {
    pub fn new(patterns: &[impl AsRef<str>]) -> Self {
        let mut by_first_byte = Vec::new();
        for pattern in patterns {
            let pattern = pattern.as_ref().to_ascii_lowercase();
            if let Some(&first) = pattern.as_bytes().first() {
                by_first_byte.resize_with(256, Vec::new);
                by_first_byte[usize::from(first)].push(pattern.into_boxed_str());
            }
        }
        Self { by_first_byte }
    }

    pub fn matches(&self, user_agent: &str) -> bool {
        self.first_match(user_agent).is_some()
    }

    /// The pattern (lower case) found first in `user_agent`.
    pub fn first_match(&self, user_agent: &str) -> Option<&str> {
        if self.by_first_byte.is_empty() {
            return None;
        }
        let agent = user_agent.as_bytes();
        agent.iter().enumerate().find_map(|(i, b)| {
            self.by_first_byte[usize::from(b.to_ascii_lowercase())]
                .iter()
                .find(|p| agent.get(i..i + p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p.as_bytes())))
                .map(|p| &**p)
        })
    }
}

/// woothee costs microseconds per parse and real traffic repeats a few thousand agents, so a
/// bounded cache makes the common case a hash lookup.
pub struct AgentParser {
    cache: quick_cache::sync::Cache<String, Arc<Agent>>,
    parser: woothee::parser::Parser,
    bots: BotPatterns,
    list: Option<BotList>,
}

impl AgentParser {
    /// A parser that calls agents matching [`DEFAULT_BOT_PATTERNS`] or `extra_patterns` bots,
    /// caching `capacity` agents.
    pub fn new(capacity: usize, extra_patterns: &[impl AsRef<str>]) -> Self {
        let patterns: Vec<&str> =
            DEFAULT_BOT_PATTERNS.iter().copied().chain(extra_patterns.iter().map(AsRef::as_ref)).collect();
        Self {
            cache: quick_cache::sync::Cache::new(capacity),
            parser: woothee::parser::Parser::new(),
            bots: BotPatterns::new(&patterns),
            list: None,
        }
    }

    /// Also calls agents the maintained bot list matches bots.
    pub fn with_list(mut self, list: BotList) -> Self {
        self.list = Some(list);
        self
    }

    /// The index of a pattern of the bot list, written as in the list.
    pub fn list_index(&self, pattern: &str) -> Option<u16> {
        self.list.as_ref().and_then(|l| l.index_of(pattern))
    }

    /// The bot list's pattern at `index`, as the list writes it.
    pub fn list_pattern(&self, index: u16) -> Option<&str> {
        self.list.as_ref().and_then(|l| l.pattern(index))
    }

    /// The agent for a (truncated) User-Agent string, and whether the cache had it.
    pub fn parse(&self, user_agent: &str) -> (Arc<Agent>, bool) {
        if let Some(hit) = self.cache.get(user_agent) {
            return (hit, true);
        }
        let agent = Arc::new(self.parse_uncached(user_agent));
        self.cache.insert(user_agent.to_owned(), agent.clone());
        (agent, false)
    }

    fn parse_uncached(&self, user_agent: &str) -> Agent {
        let list_matches: Box<[u16]> = self.list.as_ref().map(|l| l.matches(user_agent)).unwrap_or_default().into();
        let pattern = self.bots.first_match(user_agent).map(|p| format!("pattern:{p}").into_boxed_str());
        let Some(r) = self.parser.parse(user_agent) else {
            return Agent { bot_besides_list: pattern, list_matches, ..Agent::default() };
        };
        // woothee says UNKNOWN where it cannot tell; an empty field says the same in SQL.
        let known = |s: &str| if s == woothee::woothee::VALUE_UNKNOWN { String::new() } else { s.to_owned() };
        Agent {
            browser: known(r.name),
            browser_version: known(r.version.split('.').next().unwrap_or_default()),
            os: known(r.os),
            os_version: known(&r.os_version),
            device: known(r.category),
            bot_besides_list: match r.category {
                "crawler" => Some(format!("crawler:{}", r.name).into_boxed_str()),
                _ => pattern,
            },
            list_matches,
        }
    }
}

/// What is kept of an address's location and network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Geo {
    pub country: String,
    pub region: String,
    pub city: String,
    pub asn: u32,
    pub as_org: String,
}

/// The optional location and ASN databases.
///
/// A lookup walks each database's search tree, a cache miss per level over the whole file;
/// a visitor's beacons come from one network. So answers are cached by network prefix (IPv4
/// /24, IPv6 /48, or shorter: [`GeoDb::keyed_by`]), only for a prefix each database holds
/// whole, with one answer for all of it: the cache returns exactly what the databases would.
/// It holds prefixes, never addresses.
pub struct GeoDb {
    location: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
    cache: quick_cache::sync::Cache<IpAddr, Arc<Geo>>,
    /// IPv4 and IPv6 prefix lengths of the cache's keys.
    key_prefix: (u8, u8),
}

/// Network prefixes whose answer is remembered (about 200 bytes each).
const GEO_CACHE_NETWORKS: usize = 8_192;
/// The longest prefixes the cache is keyed by: most networks in the databases are wider.
const GEO_CACHE_PREFIX: (u8, u8) = (24, 48);

#[derive(Debug, thiserror::Error)]
#[error("cannot open MMDB file {path}: {source}")]
pub struct GeoDbError {
    path: String,
    source: maxminddb::MaxMindDbError,
}

impl GeoDb {
    pub fn open(location: Option<&Path>, asn: Option<&Path>) -> Result<Self, GeoDbError> {
        let open = |path: &Path| {
            Reader::open_readfile(path).map_err(|source| GeoDbError { path: path.display().to_string(), source })
        };
        Ok(Self {
            location: location.map(open).transpose()?,
            asn: asn.map(open).transpose()?,
            cache: quick_cache::sync::Cache::new(GEO_CACHE_NETWORKS),
            key_prefix: GEO_CACHE_PREFIX,
        })
    }

    /// Keys the cache by prefixes no longer than these (`privacy.ipv4_prefix_len` and
    /// `ipv6_prefix_len`): nothing in memory is finer than what the stores keep.
    pub fn keyed_by(mut self, ipv4_prefix_len: u8, ipv6_prefix_len: u8) -> Self {
        self.key_prefix = (ipv4_prefix_len.min(GEO_CACHE_PREFIX.0), ipv6_prefix_len.min(GEO_CACHE_PREFIX.1));
        self
    }

    /// The location and network of `ip` (IPv4-mapped IPv6 addresses as IPv4).
    pub fn lookup(&self, ip: IpAddr) -> Arc<Geo> {
        let key = network(ip, self.key_prefix.0, self.key_prefix.1);
        if let Some(hit) = self.cache.get(&key.network()) {
            return hit;
        }
        let (geo, narrowest) = self.lookup_uncached(canonical(ip));
        let geo = Arc::new(geo);
        if narrowest <= key.prefix_len() {
            self.cache.insert(key.network(), geo.clone());
        }
        geo
    }

    /// The answer for `ip`, and the longest prefix of the networks it came from (0 without
    /// databases): the answer holds for every address of a prefix at most that long.
    fn lookup_uncached(&self, ip: IpAddr) -> (Geo, u8) {
        let mut geo = Geo::default();
        let mut narrowest = 0;
        if let Some(rec) = find(self.location.as_ref(), ip, &mut narrowest)
            .and_then(|found| found.decode::<LocationRecord>().ok().flatten())
        {
            geo.country = rec.country.and_then(|c| c.iso_code).or(rec.country_code).unwrap_or_default().to_owned();
            geo.region = rec
                .subdivisions
                .and_then(|s| s.into_iter().next())
                .and_then(|s| s.names.and_then(|n| n.en).or(s.iso_code))
                .or(rec.state1)
                .unwrap_or_default()
                .to_owned();
            geo.city = match rec.city {
                Some(CityField::Names { names }) => names.and_then(|n| n.en).unwrap_or_default().to_owned(),
                Some(CityField::Plain(name)) => name.to_owned(),
                None => String::new(),
            };
        }
        if let Some(rec) =
            find(self.asn.as_ref(), ip, &mut narrowest).and_then(|found| found.decode::<AsnRecord>().ok().flatten())
        {
            geo.asn = rec.autonomous_system_number.unwrap_or(0);
            geo.as_org = rec.autonomous_system_organization.unwrap_or_default().to_owned();
        }
        (geo, narrowest)
    }
}

/// `ip` in one database; widens `narrowest` to the prefix of the network found (a failed
/// lookup to `u8::MAX`: never cached).
fn find<'a>(reader: Option<&'a Reader<Vec<u8>>>, ip: IpAddr, narrowest: &mut u8) -> Option<LookupResult<'a, Vec<u8>>> {
    let found = reader?.lookup(ip).map_err(|_| *narrowest = u8::MAX).ok()?;
    *narrowest = (*narrowest).max(found.network().map_or(u8::MAX, |n| n.prefix()));
    Some(found)
}

/// Both the GeoIP2 layout (`country.iso_code`, `subdivisions`, `city.names`) and
/// ip-location-db's flat one (`country_code`, `state1`, `city`).
#[derive(Deserialize)]
struct LocationRecord<'a> {
    #[serde(borrow)]
    country: Option<Country<'a>>,
    #[serde(borrow)]
    subdivisions: Option<Vec<Subdivision<'a>>>,
    #[serde(borrow)]
    city: Option<CityField<'a>>,
    country_code: Option<&'a str>,
    state1: Option<&'a str>,
}

#[derive(Deserialize)]
struct Country<'a> {
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Subdivision<'a> {
    iso_code: Option<&'a str>,
    #[serde(borrow)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Names<'a> {
    en: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CityField<'a> {
    Plain(&'a str),
    Names {
        #[serde(borrow)]
        names: Option<Names<'a>>,
    },
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_agents() {
        let p = AgentParser::new(16, NO_EXTRA);
        let (chrome, hit) = p.parse(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.130 Safari/537.36",
        );
        assert!(!hit);
        assert_eq!(
            (chrome.browser.as_str(), chrome.browser_version.as_str(), chrome.device.as_str()),
            ("Chrome", "120", "pc")
        );
        assert!(!chrome.is_bot());
        let (bot, _) = p.parse("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert!(bot.is_bot());
        assert_eq!(bot.device, "crawler");
    }

    #[test]
    fn caches_parsed_agents() {
        let p = AgentParser::new(16, NO_EXTRA);
        let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
        let (first, _) = p.parse(ua);
        let (second, hit) = p.parse(ua);
        assert!(hit);
        assert_eq!(first, second);
        assert_eq!(first.device, "smartphone");
    }

    const NO_EXTRA: &[&str] = &[];

    #[test]
    fn default_bot_patterns_are_lower_case_and_listed_once() {
        let unique: std::collections::HashSet<_> = DEFAULT_BOT_PATTERNS.iter().collect();
        assert_eq!(unique.len(), DEFAULT_BOT_PATTERNS.len());
        assert!(DEFAULT_BOT_PATTERNS.iter().all(|p| *p == p.to_ascii_lowercase()));
    }

    #[test]
    fn unknown_agent_is_not_an_error() {
        let (a, _) = AgentParser::new(4, NO_EXTRA).parse("");
        assert_eq!(a.browser, "");
        assert!(!a.is_bot());
    }

    fn check_bot(user_agent: &str, expected: bool) {
        let (agent, _) = AgentParser::new(4, NO_EXTRA).parse(user_agent);
        assert_eq!(agent.is_bot(), expected, "{user_agent}");
    }

    #[test]
    fn default_patterns_catch_tools_and_headless_browsers_but_no_browser() {
        for browser in ORDINARY_BROWSERS {
            check_bot(browser, false);
        }
        for bot in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 (compatible; YandexMetrika/2.0; +http://yandex.com/bots)",
            "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
            "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
            "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 Safari/537.36",
            "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
            "TelegramBot (like TwitterBot)",
            "curl/8.5.0",
            "Wget/1.21.4",
            "python-requests/2.31.0",
            "Python-urllib/3.11",
            "Go-http-client/1.1",
            "Java/17.0.9",
            "okhttp/4.12.0",
            "Apache-HttpClient/4.5.14 (Java/17.0.9)",
            "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
            "axios/1.6.2",
            "Scrapy/2.11.0 (+https://scrapy.org)",
            "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        ] {
            check_bot(bot, true);
        }
    }

    #[test]
    fn bot_patterns_match_anywhere_ignoring_ascii_case() {
        let patterns = BotPatterns::new(&["Curl/", "-BOT", "ыыы", "longer than the agent", ""]);
        for (agent, expected) in [
            ("curl/8", true),
            ("x CURL/", true),
            ("my-bot", true),
            ("my-bo", false),
            ("абвыыы", true),
            ("longer than", false),
            ("", false),
            ("Mozilla/5.0", false),
        ] {
            assert_eq!(patterns.matches(agent), expected, "{agent}");
        }
        assert!(!BotPatterns::new(&[""]).matches("anything"), "an empty pattern matches nothing");
    }

    #[test]
    fn configured_patterns_add_to_the_defaults_case_insensitively() {
        let p = AgentParser::new(4, &["MyMonitor"]);
        assert!(p.parse("mymonitor/1.0").0.is_bot());
        assert!(p.parse("curl/8.5.0").0.is_bot(), "the defaults still count");
        assert!(!p.parse(ORDINARY_BROWSERS[0]).0.is_bot());
    }

    #[test]
    fn empty_geodb_yields_empty_fields() {
        let db = GeoDb::open(None, None).unwrap();
        assert_eq!(*db.lookup("192.0.2.1".parse().unwrap()), Geo::default());
    }
}
