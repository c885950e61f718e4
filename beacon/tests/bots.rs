//! Bots stay out of the audience, measured on public corpora from registry packages
//! (docs/privacy.md, Bots): the crawler User-Agents that PyPI `crawler-user-agents` ships as
//! examples, and the real browser traffic of npm `user-agents`, both as `scripts/bots.sh`
//! fetches them into `WEBSTATS_TEST_BOTS_DIR` (default `.work/bots`). The detector is the
//! collector's: woothee's crawler category, the built-in patterns and the maintained list.

use std::{collections::BTreeSet, path::PathBuf};

use beacon::{AgentParser, BotList, bots::Entry};
use serde::Deserialize;

fn dir() -> PathBuf {
    std::env::var_os("WEBSTATS_TEST_BOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.work/bots"))
}

fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/bots.sh", path.display()))
}

fn crawlers() -> BTreeSet<String> {
    let entries: Vec<Entry> = serde_json::from_slice(&read("crawler-user-agents.json")).unwrap();
    entries.into_iter().flat_map(|e| e.instances).collect()
}

fn browsers() -> BTreeSet<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Profile {
        user_agent: String,
    }
    let profiles: Vec<Profile> = serde_json::from_slice(&read("user-agents.json")).unwrap();
    profiles.into_iter().map(|p| p.user_agent).collect()
}

fn parser(with_list: bool) -> AgentParser {
    let parser = AgentParser::new(16, &[] as &[&str]);
    if with_list { parser.with_list(BotList::open(&dir().join("crawler-user-agents.json")).unwrap()) } else { parser }
}

/// The agents of `corpus` the parser calls bots.
fn flagged<'a>(parser: &AgentParser, corpus: &'a BTreeSet<String>) -> Vec<&'a String> {
    corpus.iter().filter(|ua| parser.parse(store::pseudonym::user_agent_prefix(ua)).0.is_bot()).collect()
}

#[test]
fn at_least_97_percent_of_a_crawler_corpus_is_kept_out() {
    let corpus = crawlers();
    assert!(corpus.len() >= 1_000, "{} crawler agents: the corpus is too small to measure", corpus.len());
    let before = flagged(&parser(false), &corpus).len();
    let caught = flagged(&parser(true), &corpus);
    let share = caught.len() as f64 / corpus.len() as f64;
    eprintln!(
        "crawler corpus: {} of {} kept out ({:.1} %); without the list {} ({:.1} %)",
        caught.len(),
        corpus.len(),
        100.0 * share,
        before,
        100.0 * before as f64 / corpus.len() as f64
    );
    let missed: Vec<&String> = corpus.iter().filter(|ua| !caught.contains(ua)).take(20).collect();
    assert!(share >= 0.97, "only {:.1} % kept out; some missed: {missed:#?}", 100.0 * share);
}

#[test]
fn no_real_browser_is_kept_out() {
    let corpus = browsers();
    assert!(corpus.len() >= 900, "{} browser agents: the corpus is too small to measure", corpus.len());
    let wrongly = flagged(&parser(true), &corpus);
    eprintln!("browser corpus: {} of {} kept out", wrongly.len(), corpus.len());
    assert!(wrongly.is_empty(), "real browsers taken for bots: {wrongly:#?}");
}

/// The hosting networks of PyPI `cloudcheck` as the collector loads them: the big clouds are
/// there, the ISPs people browse from are not, nor Apple's Private Relay egress.
#[test]
fn hosting_networks_hold_clouds_and_no_consumer_isp() {
    let hosting = beacon::HostingNetworks::open(&dir().join("cloud_providers.json")).unwrap();
    eprintln!("hosting networks: {} providers, {} autonomous systems", hosting.providers(), hosting.asns());
    assert!(hosting.providers() >= 20 && hosting.asns() >= 300, "{} / {}", hosting.providers(), hosting.asns());
    for (asn, provider) in [
        (16509, "Amazon"),
        (15169, "Google"),
        (8075, "Microsoft"),
        (24940, "Hetzner"),
        (16276, "OVH"),
        (14061, "DigitalOcean"),
    ] {
        assert_eq!(hosting.provider(asn), Some(provider), "AS{asn}");
    }
    // Rostelecom, MTS, Beeline, MegaFon, ER-Telecom, Comcast, Deutsche Telekom; Cloudflare
    // (WARP) and Akamai's Private Relay network carry people.
    for asn in [12389, 8359, 3216, 31133, 9049, 7922, 3320, 13335, 36183] {
        assert_eq!(hosting.provider(asn), None, "AS{asn} is a network of people");
    }
}
