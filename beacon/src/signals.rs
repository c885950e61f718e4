//! Whether a beacon is a bot, and the one reason the troubleshooting store records
//! (`bot_reason`, docs/privacy.md, Bots). The User-Agent is asked first (woothee, the bot
//! patterns, the maintained list: `enrich`), then what the snippet saw in the browser, how the
//! request came, its referrer and its network. The first signal that matches is the reason;
//! each signal's false-positive risk is in the docs. Pure: the lists are loaded at start-up.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use serde::Deserialize;

use crate::enrich::Agent;

/// The kinds of evidence, in the order they are asked; the `signal` label of
/// `webstats_collector_bot_hits_total` and the part before the colon of a `bot_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The User-Agent: the bot list, woothee's crawler category or a bot pattern.
    UserAgent,
    /// The snippet saw automation in the browser (`auto`).
    Automation,
    /// The request is not what a browser sends for its transport.
    Transport,
    /// The referrer is a known spam domain.
    ReferrerSpam,
    /// The address is in a hosting provider's network, and the site does not count those.
    Hosting,
}

impl Signal {
    pub const ALL: [Signal; 5] =
        [Signal::UserAgent, Signal::Automation, Signal::Transport, Signal::ReferrerSpam, Signal::Hosting];

    pub fn label(self) -> &'static str {
        match self {
            Signal::UserAgent => "user_agent",
            Signal::Automation => "automation",
            Signal::Transport => "transport",
            Signal::ReferrerSpam => "referrer_spam",
            Signal::Hosting => "hosting",
        }
    }
}

/// The verdict on one beacon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The signal that keeps it out of the audience store, if one does.
    pub bot: Option<Signal>,
    /// `<signal>:<detail>` of the first signal that matched; also set for a beacon from a
    /// hosting network the site still counts (`hosting:<provider>`, a flag). Empty otherwise.
    pub reason: String,
}

/// What the snippet may report in `auto` (snippet/script.js): each names automation it saw.
pub const AUTOMATION_HINTS: [&str; 7] =
    ["webdriver", "headless", "phantom", "nightmare", "selenium", "playwright", "cypress"];

/// The hint an `auto` value reports: its first known word (comma-separated), `other` when it
/// names none this build knows (a newer snippet), `None` when it is empty. Only these fixed
/// words are stored, never the value.
pub fn automation_hint(value: &str) -> Option<&'static str> {
    let mut words = value.split(',').map(str::trim).filter(|w| !w.is_empty()).peekable();
    words.peek()?;
    Some(words.find_map(|w| AUTOMATION_HINTS.iter().find(|h| **h == w).copied()).unwrap_or("other"))
}

/// A site's own rules for bots (`[[sites]]` in the collector's configuration).
#[derive(Debug, Clone, Default)]
pub struct BotPolicy {
    /// Patterns of the bot list (`AgentParser::list_index`) this site does not count.
    pub bot_exclusions: Vec<u16>,
    /// POSTs without an `Origin` count: the site sends beacons from servers or apps.
    pub count_without_origin: bool,
    /// Beacons from hosting networks are bots for this site, not only flagged.
    pub exclude_hosting: bool,
}

/// What the request said besides the User-Agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// [`automation_hint`] of the beacon's `auto`.
    pub automation: Option<&'static str>,
    /// A POST without an `Origin` header, which every current browser sends with a POST.
    pub post_without_origin: bool,
    /// The referrer's host, empty when none.
    pub referrer_host: &'a str,
    /// The address's autonomous system, 0 when unknown.
    pub asn: u32,
}

/// The lists the signals consult, loaded once.
#[derive(Debug, Default)]
pub struct Signals {
    pub hosting: HostingNetworks,
    pub spam_referrers: SpamReferrers,
}

impl Signals {
    /// The verdict on a beacon from `agent` with `evidence`, for a site with `site`'s rules.
    /// `list_pattern` names a bot-list pattern by index ([`crate::AgentParser::list_pattern`]).
    pub fn verdict<'a>(
        &self,
        agent: &Agent,
        list_pattern: impl Fn(u16) -> Option<&'a str>,
        evidence: Evidence<'_>,
        site: &BotPolicy,
    ) -> Verdict {
        let bot = |signal: Signal, detail: &str| Verdict {
            bot: Some(signal),
            reason: format!("{}:{detail}", signal.label()),
        };
        if let Some(index) = agent.first_list_match(&site.bot_exclusions) {
            return Verdict {
                bot: Some(Signal::UserAgent),
                reason: format!("list:{}", list_pattern(index).unwrap_or("?")),
            };
        }
        if let Some(reason) = &agent.bot_besides_list {
            return Verdict { bot: Some(Signal::UserAgent), reason: reason.to_string() };
        }
        if let Some(hint) = evidence.automation {
            return bot(Signal::Automation, hint);
        }
        if evidence.post_without_origin && !site.count_without_origin {
            return bot(Signal::Transport, "no_origin");
        }
        if let Some(domain) = self.spam_referrers.find(evidence.referrer_host) {
            return bot(Signal::ReferrerSpam, domain);
        }
        match self.hosting.provider(evidence.asn) {
            Some(provider) if site.exclude_hosting => bot(Signal::Hosting, provider),
            Some(provider) => Verdict { bot: None, reason: format!("{}:{provider}", Signal::Hosting.label()) },
            None => Verdict::default(),
        }
    }
}

/// Autonomous systems of hosting and cloud providers: the providers tagged `cloud` in PyPI
/// `cloudcheck`'s `cloud_providers_v3.json`, as `scripts/bots.sh` fetches it. Content
/// networks, firewalls and government networks of that file are left out: people browse
/// through those. So are [`PEOPLE_NETWORKS`].
/// Networks of listed providers that carry people's browsing: Akamai's AS36183 is the egress
/// of Apple's iCloud Private Relay.
pub const PEOPLE_NETWORKS: [u32; 1] = [36183];

#[derive(Debug, Default)]
pub struct HostingNetworks {
    providers: Vec<String>,
    by_asn: HashMap<u32, u16>,
}

#[derive(Deserialize)]
struct Provider {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    asns: Vec<u32>,
}

impl HostingNetworks {
    pub fn open(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read the hosting list {}: {e}", path.display()))?;
        Self::from_json(&bytes).map_err(|e| format!("the hosting list {} is not cloudcheck JSON: {e}", path.display()))
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let all: HashMap<String, Provider> = serde_json::from_slice(bytes)?;
        let mut names: Vec<(&String, &Provider)> =
            all.iter().filter(|(_, p)| p.tags.iter().any(|t| t == "cloud")).collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        let mut networks = Self::default();
        for (name, provider) in names {
            let Ok(index) = u16::try_from(networks.providers.len()) else { break };
            networks.providers.push(name.clone());
            for asn in provider.asns.iter().filter(|a| !PEOPLE_NETWORKS.contains(a)) {
                networks.by_asn.entry(*asn).or_insert(index);
            }
        }
        Ok(networks)
    }

    /// The provider whose network `asn` is; `None` for 0 (unknown).
    pub fn provider(&self, asn: u32) -> Option<&str> {
        self.by_asn.get(&asn).map(|i| self.providers[usize::from(*i)].as_str())
    }

    pub fn providers(&self) -> usize {
        self.providers.len()
    }

    pub fn asns(&self) -> usize {
        self.by_asn.len()
    }
}

/// Referrer domains that only spam analytics (`[bots] spam_referrers`); a domain also covers
/// its subdomains. A set, so a lookup costs one probe per label of the host.
#[derive(Debug, Default)]
pub struct SpamReferrers {
    domains: HashSet<String>,
}

impl SpamReferrers {
    pub fn new(domains: &[impl AsRef<str>]) -> Self {
        Self { domains: domains.iter().map(|d| d.as_ref().trim_end_matches('.').to_ascii_lowercase()).collect() }
    }

    /// The listed domain `host` (lower case, as URL parsing leaves it) is or is under.
    pub fn find(&self, host: &str) -> Option<&str> {
        if self.domains.is_empty() || host.is_empty() {
            return None;
        }
        let suffixes = std::iter::once(0).chain(host.match_indices('.').map(|(i, _)| i + 1));
        suffixes.filter_map(|start| self.domains.get(&host[start..])).map(String::as_str).next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automation_hints_are_fixed_words() {
        assert_eq!(automation_hint("webdriver"), Some("webdriver"));
        assert_eq!(automation_hint("future, selenium"), Some("selenium"));
        assert_eq!(automation_hint("Ivanov Ivan"), Some("other"), "free text is never stored");
        assert_eq!(automation_hint(" , "), None);
        assert_eq!(automation_hint(""), None);
    }

    #[test]
    fn spam_domains_cover_their_subdomains_only() {
        let spam = SpamReferrers::new(&["darodar.com", "Semalt.com."]);
        assert_eq!(spam.find("darodar.com"), Some("darodar.com"));
        assert_eq!(spam.find("forum.darodar.com"), Some("darodar.com"));
        assert_eq!(spam.find("www.semalt.com"), Some("semalt.com"), "listed in any case");
        assert_eq!(spam.find("notdarodar.com"), None);
        assert_eq!(spam.find("darodar.com.ru"), None);
        assert_eq!(spam.find(""), None);
    }

    #[test]
    fn hosting_is_a_flag_unless_the_site_excludes_it_and_comes_last() {
        let json = br#"{"Amazon": {"tags": ["cloud"], "asns": [16509]}}"#;
        let signals = Signals { hosting: HostingNetworks::from_json(json).unwrap(), ..Signals::default() };
        let browser = Agent::default();
        let no_list = |_| None;
        let from_aws = Evidence { asn: 16509, ..Evidence::default() };
        let counted = BotPolicy::default();
        let excluding = BotPolicy { exclude_hosting: true, ..BotPolicy::default() };
        let flag = signals.verdict(&browser, no_list, from_aws, &counted);
        assert_eq!(flag, Verdict { bot: None, reason: "hosting:Amazon".into() });
        let excluded = signals.verdict(&browser, no_list, from_aws, &excluding);
        assert_eq!(excluded, Verdict { bot: Some(Signal::Hosting), reason: "hosting:Amazon".into() });
        let automated = Evidence { automation: Some("selenium"), ..from_aws };
        assert_eq!(signals.verdict(&browser, no_list, automated, &excluding).reason, "automation:selenium");
        let elsewhere = Evidence { asn: 12389, ..Evidence::default() };
        assert_eq!(signals.verdict(&browser, no_list, elsewhere, &excluding), Verdict::default());
    }

    #[test]
    fn hosting_networks_are_the_cloud_providers() {
        let json = br#"{
            "Amazon": {"tags": ["cloud"], "asns": [16509, 14618]},
            "Fastly": {"tags": ["cdn"], "asns": [54113]},
            "DoD": {"tags": ["gov"], "asns": [721]},
            "Hetzner": {"tags": ["cloud"], "asns": [24940], "cidrs": ["5.9.0.0/16"]}
        }"#;
        let hosting = HostingNetworks::from_json(json).unwrap();
        assert_eq!((hosting.providers(), hosting.asns()), (2, 3));
        assert_eq!(hosting.provider(16509), Some("Amazon"));
        assert_eq!(hosting.provider(24940), Some("Hetzner"));
        assert_eq!(hosting.provider(54113), None, "content networks carry people");
        assert_eq!(hosting.provider(721), None);
        assert_eq!(hosting.provider(0), None);
    }
}
