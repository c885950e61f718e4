//! Enrichment: User-Agent parsing (woothee behind a bounded cache) and GeoIP/ASN lookups
//! (maxminddb, databases held in memory). No I/O after start-up and no failure on bad input:
//! an unknown agent or address yields empty fields.

use std::{net::IpAddr, path::Path, sync::Arc};

use maxminddb::Reader;
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
    pub is_crawler: bool,
}

/// Longest User-Agent parsed, cached and stored; real ones are far shorter.
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// woothee costs microseconds per parse and real traffic repeats a few thousand agents, so a
/// bounded cache makes the common case a hash lookup.
pub struct AgentParser {
    cache: quick_cache::sync::Cache<String, Arc<Agent>>,
    parser: woothee::parser::Parser,
}

impl AgentParser {
    pub fn new(capacity: usize) -> Self {
        Self { cache: quick_cache::sync::Cache::new(capacity), parser: woothee::parser::Parser::new() }
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
        let Some(r) = self.parser.parse(user_agent) else { return Agent::default() };
        // woothee says UNKNOWN where it cannot tell; an empty field says the same in SQL.
        let known = |s: &str| if s == woothee::woothee::VALUE_UNKNOWN { String::new() } else { s.to_owned() };
        Agent {
            browser: known(r.name),
            browser_version: known(r.version.split('.').next().unwrap_or_default()),
            os: known(r.os),
            os_version: known(&r.os_version),
            device: known(r.category),
            is_crawler: r.category == "crawler",
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
pub struct GeoDb {
    location: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

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
        Ok(Self { location: location.map(open).transpose()?, asn: asn.map(open).transpose()? })
    }

    pub fn lookup(&self, ip: IpAddr) -> Geo {
        let mut geo = Geo::default();
        if let Some(rec) = self.location.as_ref().and_then(|r| decode::<LocationRecord>(r, ip)) {
            geo.country = rec
                .country
                .and_then(|c| c.iso_code)
                .or(rec.country_code)
                .unwrap_or_default()
                .to_owned();
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
        if let Some(rec) = self.asn.as_ref().and_then(|r| decode::<AsnRecord>(r, ip)) {
            geo.asn = rec.autonomous_system_number.unwrap_or(0);
            geo.as_org = rec.autonomous_system_organization.unwrap_or_default().to_owned();
        }
        geo
    }
}

fn decode<'a, T: Deserialize<'a>>(reader: &'a Reader<Vec<u8>>, ip: IpAddr) -> Option<T> {
    reader.lookup(ip).ok()?.decode::<T>().ok().flatten()
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
        let p = AgentParser::new(16);
        let (chrome, hit) = p.parse(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.130 Safari/537.36",
        );
        assert!(!hit);
        assert_eq!((chrome.browser.as_str(), chrome.browser_version.as_str(), chrome.device.as_str()), ("Chrome", "120", "pc"));
        assert!(!chrome.is_crawler);
        let (bot, _) = p.parse("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert!(bot.is_crawler);
        assert_eq!(bot.device, "crawler");
    }

    #[test]
    fn caches_parsed_agents() {
        let p = AgentParser::new(16);
        let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
        let (first, _) = p.parse(ua);
        let (second, hit) = p.parse(ua);
        assert!(hit);
        assert_eq!(first, second);
        assert_eq!(first.device, "smartphone");
    }

    #[test]
    fn unknown_agent_is_not_an_error() {
        let (a, _) = AgentParser::new(4).parse("");
        assert_eq!(a.browser, "");
        assert!(!a.is_crawler);
    }

    #[test]
    fn empty_geodb_yields_empty_fields() {
        let db = GeoDb::open(None, None).unwrap();
        assert_eq!(db.lookup("192.0.2.1".parse().unwrap()), Geo::default());
    }
}
