//! The pure stage between a parsed beacon and stored rows: URL hygiene, free-text scrubbing,
//! enrichment, pseudonymisation, purpose routing. The raw IP and cookie value enter here and do
//! not leave: the only output is [`Pseudonymised`], which nothing else can construct. Every
//! text field of a stored row has been through `urls` or `scrub` first.

use std::net::IpAddr;

use store::{
    AudienceRow, EventType, SubjectKind, TroubleshootingRow, day_number,
    pseudonym::{CookieKey, SaltKeys, canonical, network_prefix, user_agent_prefix},
};

use serde::{Deserialize, Serialize};

use crate::{
    blocklist::Blocklist,
    enrich::{AgentParser, GeoDb},
    parse::{Beacon, FreeText},
    scrub,
    signals::{BotPolicy, Evidence, Signal, Signals},
    text::cut_scrubbed,
    urls::{self, Page, Referrer, Routes, SiteRules},
};

/// Rows ready for storage. Private fields and no public constructor: holding one proves the
/// row went through [`Pipeline::process`], so no raw address or cookie can reach the sink.
#[derive(Debug)]
pub struct Pseudonymised {
    audience: Option<AudienceRow>,
    troubleshooting: Option<TroubleshootingRow>,
}

impl Pseudonymised {
    pub fn into_parts(self) -> (Option<AudienceRow>, Option<TroubleshootingRow>) {
        (self.audience, self.troubleshooting)
    }
}

/// What the HTTP layer learnt about the request, besides the body.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub ip: IpAddr,
    pub user_agent: &'a str,
    /// The site's cookie from the `Cookie` header (cookie mode only).
    pub cookie: Option<&'a str>,
    /// `DNT: 1` or `Sec-GPC: 1`.
    pub do_not_track: bool,
    /// Receive time, Unix seconds: the event time.
    pub received_at: u32,
    /// A POST without an `Origin` header, which no current browser sends (docs/privacy.md,
    /// Bots).
    pub post_without_origin: bool,
}

/// A site as the pipeline needs it.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// The `site` value its beacons carry.
    pub id: String,
    /// Hosts its pages live on (`urls::host_matches`): its own referrers are same-site.
    pub allowed_hosts: Vec<String>,
    /// Pseudonymise the cookie (or `sid`) too.
    pub cookie_mode: bool,
    pub do_not_track: DoNotTrack,
    /// Query parameters kept besides the utm_* ones.
    pub query_allowlist: Vec<String>,
    pub routes: Routes,
    /// Event property keys kept; empty keeps every key. Values are scrubbed either way.
    pub prop_allowlist: Vec<String>,
    /// Store an error message's template only (`scrub::template`).
    pub error_templates: bool,
    /// What counts as a bot on this site besides the common rules.
    pub bots: BotPolicy,
}

/// What to do with beacons carrying `DNT: 1` or `Sec-GPC: 1`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoNotTrack {
    /// Count the view with no visitor id, no cookie pseudonym and no troubleshooting row.
    #[default]
    Anonymous,
    /// Accept the beacon and store nothing.
    Drop,
}

/// What happened to an accepted beacon.
// Moved once per request; boxing the rows would cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Outcome {
    Store {
        rows: Pseudonymised,
        /// The signal that made it a bot, kept out of the audience store.
        bot: Option<Signal>,
        ua_cache_hit: bool,
    },
    /// The visitor asked not to be tracked and the site drops such beacons.
    DroppedDoNotTrack,
    /// The person's pseudonym is blocked (a data-subject request).
    DroppedBlocked,
}

/// The control data a beacon is processed under: the salt keys of the period containing its
/// receive time, and the blocked pseudonyms.
#[derive(Clone, Copy)]
pub struct Controls<'a> {
    pub keys: &'a SaltKeys,
    pub blocklist: &'a Blocklist,
}

/// Everything the stage reads, built once at start-up.
pub struct Pipeline {
    pub agents: AgentParser,
    pub geo: GeoDb,
    pub signals: Signals,
    pub cookie_key: Option<CookieKey>,
    pub ipv4_prefix_len: u8,
    pub ipv6_prefix_len: u8,
}

impl Pipeline {
    pub fn process(&self, mut beacon: Beacon, facts: RequestFacts<'_>, site: &Site, controls: Controls<'_>) -> Outcome {
        let keys = controls.keys;
        // Under DNT/GPC at most an anonymous audience row is kept: a timing or error beacon,
        // which has none, would store nothing, so it is counted as dropped.
        let audience_type = matches!(beacon.kind.0, EventType::Pageview | EventType::Event);
        if facts.do_not_track && (site.do_not_track == DoNotTrack::Drop || !audience_type) {
            return Outcome::DroppedDoNotTrack;
        }
        let user_agent = user_agent_prefix(facts.user_agent);
        let (agent, ua_cache_hit) = self.agents.parse(user_agent);
        let geo = self.geo.lookup(facts.ip);
        let rules = SiteRules {
            query_allowlist: &site.query_allowlist,
            allowed_hosts: &site.allowed_hosts,
            routes: &site.routes,
        };
        let mut page = urls::page(&beacon.url, &rules);
        let mut referrer = beacon.referrer.as_ref().map(|r| urls::referrer(r, &rules, &page.host)).unwrap_or_default();
        let evidence = Evidence {
            automation: beacon.automation,
            post_without_origin: facts.post_without_origin,
            referrer_host: &referrer.host,
            asn: geo.asn,
        };
        let verdict = self.signals.verdict(&agent, |i| self.agents.list_pattern(i), evidence, &site.bots);
        let is_bot = verdict.bot.is_some();
        scrub_free_text(&mut beacon, site);
        remove_client_ip(canonical(facts.ip), &mut page, &mut referrer, &mut beacon);
        let kind = beacon.kind.0;

        // Anonymous mode keeps neither pseudonym and no troubleshooting row (section 7).
        let anonymous = facts.do_not_track;
        let visitor_id = if anonymous { 0 } else { keys.visitor_id(&site.id, facts.ip, user_agent) };
        let cookie_id = match (&self.cookie_key, site.cookie_mode, anonymous) {
            (Some(key), true, false) => {
                beacon.sid.as_deref().or(facts.cookie).map_or(0, |cookie| key.cookie_id(&site.id, cookie))
            }
            _ => 0,
        };
        let blocked = |kind, id| controls.blocklist.contains(&site.id, kind, id);
        if blocked(SubjectKind::Cookie, cookie_id) || blocked(SubjectKind::Visitor, visitor_id) {
            return Outcome::DroppedBlocked;
        }
        let date = day_number(facts.received_at);

        let audience = (!is_bot && matches!(kind, EventType::Pageview | EventType::Event)).then(|| {
            let (prop_keys, prop_values) = beacon.props.iter().cloned().unzip();
            AudienceRow {
                date,
                ts: facts.received_at,
                site: site.id.clone(),
                r#type: kind,
                visitor_id,
                cookie_id,
                host: page.host.clone(),
                path: page.path.clone(),
                query: page.query,
                utm_source: page.utm.source,
                utm_medium: page.utm.medium,
                utm_campaign: page.utm.campaign,
                utm_term: page.utm.term,
                utm_content: page.utm.content,
                ref_host: referrer.host.clone(),
                ref_path: referrer.path.clone(),
                name: beacon.name.clone().unwrap_or_default(),
                prop_keys,
                prop_values,
                browser: agent.browser.clone(),
                browser_version: agent.browser_version.clone(),
                os: agent.os.clone(),
                os_version: agent.os_version.clone(),
                device: agent.device.clone(),
                country: geo.country.clone(),
                region: geo.region.clone(),
                city: geo.city.clone(),
                screen_width: beacon.screen_width.unwrap_or(0),
                lang: beacon.lang.clone().unwrap_or_default(),
            }
        });

        let troubleshooting = (!anonymous).then(|| {
            let error = beacon.error.unwrap_or_default();
            let t = beacon.timing;
            TroubleshootingRow {
                date,
                ts: facts.received_at,
                site: site.id.clone(),
                r#type: kind,
                is_bot: u8::from(is_bot),
                visitor_id,
                cookie_id,
                ip_id: keys.ip_id(facts.ip),
                network: network_prefix(facts.ip, self.ipv4_prefix_len, self.ipv6_prefix_len),
                asn: geo.asn,
                as_org: geo.as_org.clone(),
                country: geo.country.clone(),
                host: page.host,
                path: page.path,
                ref_host: referrer.host,
                ref_path: referrer.path,
                name: beacon.name.unwrap_or_default(),
                user_agent: user_agent.to_owned(),
                browser: agent.browser.clone(),
                browser_version: agent.browser_version.clone(),
                os: agent.os.clone(),
                os_version: agent.os_version.clone(),
                device: agent.device.clone(),
                ttfb_ms: t.ttfb_ms,
                fcp_ms: t.fcp_ms,
                dcl_ms: t.dcl_ms,
                load_ms: t.load_ms,
                lcp_ms: t.lcp_ms,
                inp_ms: t.inp_ms,
                cls: t.cls,
                error_message: error.message,
                error_source: error.source,
                error_line: error.line,
                error_col: error.col,
                error_stack: error.stack,
                bot_reason: verdict.reason,
            }
        });

        Outcome::Store { rows: Pseudonymised { audience, troubleshooting }, bot: verdict.bot, ua_cache_hit }
    }
}

/// Replaces personal data in every free-text field by placeholders (docs/privacy-model.md
/// section 4), then cuts each to its length: the scrubbers see the whole text. URLs inside an
/// error report are reduced like page URLs; `lang` is checked instead, since a valid tag holds
/// nothing personal. Props whose key the site does not list go first.
fn scrub_free_text(beacon: &mut Beacon, site: &Site) {
    let clean = |s: &mut String, field: FreeText| {
        scrub::in_place(s);
        if s.len() > field.max_chars() {
            *s = cut_scrubbed(std::mem::take(s), field.max_chars());
        }
    };
    if let Some(name) = &mut beacon.name {
        clean(name, FreeText::Name);
    }
    if !site.prop_allowlist.is_empty() {
        beacon.props.retain(|(key, _)| site.prop_allowlist.contains(key));
    }
    for (key, value) in &mut beacon.props {
        clean(key, FreeText::PropKey);
        clean(value, FreeText::PropValue);
    }
    if beacon.lang.as_deref().is_some_and(|l| !scrub::is_language_tag(l)) {
        beacon.lang = None;
    }
    if let Some(error) = &mut beacon.error {
        let with_urls = |s: &str, field: FreeText| cut_scrubbed(urls::scrub_with_urls(s), field.max_chars());
        error.message = with_urls(&error.message, FreeText::ErrorMessage);
        if site.error_templates {
            error.message = scrub::template(&error.message);
        }
        error.source = with_urls(&error.source, FreeText::ErrorSource);
        error.stack = with_urls(&error.stack, FreeText::ErrorStack);
    }
}

/// Removes the request's own address from every stored text that could hold it, replaced by
/// `[ip]` (docs/privacy-model.md section 1: the raw IP never reaches storage). URL hygiene and
/// `scrub` keep IP addresses in general (a server's address in an error is no one's personal
/// data), but a page, a referrer or free text can carry the visitor's own: a "your IP address"
/// page, a diagnostics event, a referrer from the visitor's own machine. Its canonical text is
/// matched in any ASCII case (IPv6 hex digits), also percent-encoded. The User-Agent, stored
/// verbatim for troubleshooting (section 3), is not changed.
fn remove_client_ip(ip: IpAddr, page: &mut Page, referrer: &mut Referrer, beacon: &mut Beacon) {
    let ip = ip.to_string();
    let utm = &mut page.utm;
    let addresses = [&mut page.host, &mut page.path, &mut referrer.host, &mut referrer.path];
    let utm = [&mut utm.source, &mut utm.medium, &mut utm.campaign, &mut utm.term, &mut utm.content];
    let free_text = beacon.props.iter_mut().flat_map(|(k, v)| [k, v]).chain(&mut beacon.name);
    let error = beacon.error.iter_mut().flat_map(|e| [&mut e.message, &mut e.source, &mut e.stack]);
    for text in addresses.into_iter().chain(utm).chain(free_text).chain(error) {
        remove_ip(text, &ip);
    }
    // The kept query is stored form-encoded, which spells an address one way only.
    if !page.query.is_empty() {
        let encoded: String = url::form_urlencoded::byte_serialize(ip.as_bytes()).collect();
        replace_ignore_ascii_case(&mut page.query, &encoded, "%5Bip%5D");
    }
}

/// Replaces `ip` in `s` by `[ip]`. When it is there only percent-encoded (a URL's query in free
/// text), `s` is kept decoded without it, as `scrub::text` does with e-mail addresses.
fn remove_ip(s: &mut String, ip: &str) {
    replace_ignore_ascii_case(s, ip, "[ip]");
    if s.contains('%') {
        let decoded = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
        if find_ignore_ascii_case(&decoded, ip, 0).is_some() {
            let mut decoded = decoded.into_owned();
            replace_ignore_ascii_case(&mut decoded, ip, "[ip]");
            *s = decoded;
        }
    }
}

/// Replaces every `needle` (ASCII) in `s`, in any ASCII case, by `with`. Allocates only when
/// there is one.
fn replace_ignore_ascii_case(s: &mut String, needle: &str, with: &str) {
    let Some(mut at) = find_ignore_ascii_case(s, needle, 0) else { return };
    let mut out = String::with_capacity(s.len());
    let mut done = 0;
    loop {
        out.push_str(&s[done..at]);
        out.push_str(with);
        done = at + needle.len();
        match find_ignore_ascii_case(s, needle, done) {
            Some(next) => at = next,
            None => break,
        }
    }
    out.push_str(&s[done..]);
    *s = out;
}

/// The first `needle` (ASCII, not empty) in `s` at or after byte `from`, in any ASCII case. A
/// match is all ASCII, so it starts and ends on char boundaries.
fn find_ignore_ascii_case(s: &str, needle: &str, from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    s.as_bytes()[from..].windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle.as_bytes())).map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, signals::SpamReferrers};
    use serde_json::json;

    const CHROME: &str =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36";
    const BOT: &str = "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)";

    fn pipeline() -> Pipeline {
        Pipeline {
            agents: AgentParser::new(64, &[] as &[&str]),
            geo: GeoDb::open(None, None).unwrap(),
            signals: Signals::default(),
            cookie_key: CookieKey::from_material(&[9; 32]),
            ipv4_prefix_len: 24,
            ipv6_prefix_len: 48,
        }
    }

    fn site(cookie_mode: bool, do_not_track: DoNotTrack) -> Site {
        Site {
            id: "s".into(),
            allowed_hosts: vec!["a.ru".into()],
            cookie_mode,
            do_not_track,
            query_allowlist: Vec::new(),
            routes: Routes::from(vec!["/invoices/:id".to_owned()]),
            ..Site::default()
        }
    }

    fn facts(user_agent: &str, do_not_track: bool) -> RequestFacts<'_> {
        RequestFacts {
            ip: "198.51.100.23".parse().unwrap(),
            user_agent,
            cookie: Some("c00kie"),
            do_not_track,
            received_at: 1_764_000_000,
            post_without_origin: false,
        }
    }

    fn run(body: &str, facts: RequestFacts<'_>, site: &Site) -> Outcome {
        let keys = SaltKeys::derive(&[1; 32]);
        let blocklist = Blocklist::default();
        pipeline().process(
            parse::from_json(body.as_bytes()).unwrap(),
            facts,
            site,
            Controls { keys: &keys, blocklist: &blocklist },
        )
    }

    fn rows(outcome: Outcome) -> (Option<AudienceRow>, Option<TroubleshootingRow>) {
        match outcome {
            Outcome::Store { rows, .. } => rows.into_parts(),
            Outcome::DroppedDoNotTrack | Outcome::DroppedBlocked => panic!("dropped"),
        }
    }

    const PAGEVIEW: &str =
        r#"{"site":"s","url":"https://a.ru/accounts/12345678?utm_source=x&sid=1","ref":"https://ya.ru/search?q=1"}"#;

    #[test]
    fn pageview_goes_to_both_stores_without_raw_identifiers() {
        let (a, t) = rows(run(PAGEVIEW, facts(CHROME, false), &site(false, DoNotTrack::Anonymous)));
        let (a, t) = (a.unwrap(), t.unwrap());
        assert_eq!((a.path.as_str(), a.utm_source.as_str(), a.ref_host.as_str()), ("/accounts/:id", "x", "ya.ru"));
        assert_ne!(a.visitor_id, 0);
        assert_eq!(a.cookie_id, 0, "cookie mode is off");
        assert_eq!(t.network, "198.51.100.0/24");
        assert_eq!(a.date, 20_416);
        let debug = format!("{a:?}{t:?}");
        assert!(!debug.contains("198.51.100.23") && !debug.contains("c00kie"));
    }

    #[test]
    fn bots_are_kept_out_of_the_audience_store() {
        let (a, t) = rows(run(PAGEVIEW, facts(BOT, false), &site(false, DoNotTrack::Anonymous)));
        assert!(a.is_none());
        let t = t.unwrap();
        assert_eq!((t.is_bot, t.bot_reason.as_str()), (1, "crawler:misc crawler"));
    }

    #[test]
    fn automation_transport_and_referrer_spam_keep_a_browser_out_and_say_why() {
        let mut pipeline = pipeline();
        pipeline.signals.spam_referrers = SpamReferrers::new(&["darodar.com"]);
        let keys = SaltKeys::derive(&[1; 32]);
        let blocklist = Blocklist::default();
        let stored = |body: &str, facts: RequestFacts<'_>, site: &Site| {
            let beacon = parse::from_json(body.as_bytes()).unwrap();
            let outcome = pipeline.process(beacon, facts, site, Controls { keys: &keys, blocklist: &blocklist });
            let Outcome::Store { rows, bot, .. } = outcome else { panic!("dropped") };
            let (a, t) = rows.into_parts();
            let t = t.unwrap();
            (a.is_some(), bot, t.is_bot, t.bot_reason)
        };
        let site = site(false, DoNotTrack::Anonymous);
        let automated = r#"{"site":"s","url":"https://a.ru/","auto":"webdriver,headless"}"#;
        let spam = r#"{"site":"s","url":"https://a.ru/","ref":"https://www.darodar.com/seo"}"#;
        let plain = r#"{"site":"s","url":"https://a.ru/"}"#;
        let no_origin = RequestFacts { post_without_origin: true, ..facts(CHROME, false) };
        assert_eq!(
            stored(automated, facts(CHROME, false), &site),
            (false, Some(Signal::Automation), 1, "automation:webdriver".to_owned())
        );
        assert_eq!(
            stored(plain, no_origin, &site),
            (false, Some(Signal::Transport), 1, "transport:no_origin".to_owned())
        );
        assert_eq!(
            stored(spam, facts(CHROME, false), &site),
            (false, Some(Signal::ReferrerSpam), 1, "referrer_spam:darodar.com".to_owned())
        );
        assert_eq!(stored(plain, facts(CHROME, false), &site), (true, None, 0, String::new()));
        let mut servers = site.clone();
        servers.bots.count_without_origin = true;
        assert_eq!(
            stored(plain, no_origin, &servers),
            (true, None, 0, String::new()),
            "a site that sends from servers"
        );
        // The User-Agent is asked first.
        assert_eq!(stored(automated, facts(BOT, false), &site).3, "crawler:misc crawler");
    }

    #[test]
    fn a_site_can_exclude_a_bot_list_pattern() {
        let list = crate::BotList::new(["MyPortalApp\\/", "[Ss]canner"]).unwrap();
        let mut pipeline = pipeline();
        pipeline.agents = AgentParser::new(64, &[] as &[&str]).with_list(list);
        let app = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/124.0 Mobile MyPortalApp/3.2";
        let both = "MyPortalApp/3.2 Scanner";
        let mut excluding = site(false, DoNotTrack::Anonymous);
        excluding.bots.bot_exclusions = vec![pipeline.agents.list_index("MyPortalApp\\/").unwrap()];
        let keys = SaltKeys::derive(&[1; 32]);
        let blocklist = Blocklist::default();
        let stored = |ua: &str, site: &Site| {
            let beacon = parse::from_json(PAGEVIEW.as_bytes()).unwrap();
            rows(pipeline.process(beacon, facts(ua, false), site, Controls { keys: &keys, blocklist: &blocklist }))
        };
        let (a, t) = stored(app, &site(false, DoNotTrack::Anonymous));
        assert!(a.is_none(), "a list pattern makes a bot");
        let t = t.unwrap();
        assert_eq!((t.is_bot, t.bot_reason.as_str()), (1, "list:MyPortalApp\\/"));
        let (a, t) = stored(app, &excluding);
        assert!(a.is_some(), "the site excludes that pattern");
        let t = t.unwrap();
        assert_eq!((t.is_bot, t.bot_reason.as_str()), (0, ""));
        let (a, t) = stored(both, &excluding);
        assert!(a.is_none(), "another pattern still counts");
        assert_eq!(t.unwrap().bot_reason, "list:[Ss]canner");
        assert!(stored(BOT, &excluding).0.is_none(), "woothee's crawlers still count");
    }

    #[test]
    fn cookie_mode_pseudonymises_the_cookie() {
        let (a, _) = rows(run(PAGEVIEW, facts(CHROME, false), &site(true, DoNotTrack::Anonymous)));
        assert_eq!(a.unwrap().cookie_id, CookieKey::from_material(&[9; 32]).unwrap().cookie_id("s", "c00kie"));
    }

    #[test]
    fn do_not_track_counts_anonymously_or_drops() {
        let (a, t) = rows(run(PAGEVIEW, facts(CHROME, true), &site(true, DoNotTrack::Anonymous)));
        let a = a.unwrap();
        assert_eq!((a.visitor_id, a.cookie_id), (0, 0));
        assert!(t.is_none());
        assert!(matches!(
            run(PAGEVIEW, facts(CHROME, true), &site(false, DoNotTrack::Drop)),
            Outcome::DroppedDoNotTrack
        ));
        let timing = r#"{"site":"s","type":"timing","url":"https://a.ru/","t":{"load":5}}"#;
        assert!(matches!(
            run(timing, facts(CHROME, true), &site(false, DoNotTrack::Anonymous)),
            Outcome::DroppedDoNotTrack
        ));
    }

    #[test]
    fn agents_matching_bot_patterns_are_kept_out_of_the_audience_store() {
        let (a, t) = rows(run(PAGEVIEW, facts("python-requests/2.31.0", false), &site(false, DoNotTrack::Anonymous)));
        assert!(a.is_none());
        let t = t.unwrap();
        assert_eq!((t.is_bot, t.bot_reason.as_str()), (1, "pattern:python-requests"));
    }

    #[test]
    fn route_templates_apply_to_the_page_and_same_site_referrers() {
        let body = r#"{"site":"s","url":"https://a.ru/invoices/0456/","ref":"https://a.ru/invoices/0455?x=1"}"#;
        let (a, _) = rows(run(body, facts(CHROME, false), &site(false, DoNotTrack::Anonymous)));
        let a = a.unwrap();
        assert_eq!(
            (a.path.as_str(), a.ref_host.as_str(), a.ref_path.as_str()),
            ("/invoices/:id", "a.ru", "/invoices/:id")
        );
        let body = r#"{"site":"s","url":"https://a.ru/","ref":"https://b.ru/invoices/0455"}"#;
        let (a, _) = rows(run(body, facts(CHROME, false), &site(false, DoNotTrack::Anonymous)));
        assert_eq!(a.unwrap().ref_path, "/invoices/0455", "another site's path gets no templates");
    }

    #[test]
    fn free_text_is_scrubbed_before_storage() {
        let body = r#"{"site":"s","type":"event","url":"https://a.ru/","name":"callback 8 912 345-67-89",
            "props":{"ivan@mail.ru":"+7 (912) 345-67-89","plan":"day-night"},"lang":"ivan@mail.ru"}"#;
        let (a, t) = rows(run(body, facts(CHROME, false), &site(false, DoNotTrack::Anonymous)));
        let a = a.unwrap();
        assert_eq!(a.name, "callback [phone]");
        assert_eq!(a.prop_keys, ["[email]", "plan"]);
        assert_eq!(a.prop_values, ["[phone]", "day-night"]);
        assert_eq!(a.lang, "");
        assert_eq!(t.unwrap().name, "callback [phone]");

        let body = r#"{"site":"s","type":"error","url":"https://a.ru/","lang":"ru-RU","err":{
            "msg":"Failed: ivan@mail.ru, HTTP 503","src":"https://a.ru/app.js?token=secret#x","line":10,
            "stack":"at pay (https://a.ru/accounts/4402117735/pay?sid=abc:10:5)"}}"#;
        let (_, t) = rows(run(body, facts(CHROME, false), &site(false, DoNotTrack::Anonymous)));
        let t = t.unwrap();
        assert_eq!(t.error_message, "Failed: [email], HTTP 503");
        assert_eq!(t.error_source, "https://a.ru/app.js");
        assert_eq!(t.error_stack, "at pay (https://a.ru/accounts/:id/pay:10:5)");
        assert_eq!(t.error_line, 10);
    }

    #[test]
    fn sites_keep_listed_props_and_error_templates_only() {
        let mut site = site(false, DoNotTrack::Anonymous);
        site.prop_allowlist = vec!["plan".into(), "n".into()];
        site.error_templates = true;
        let body = r#"{"site":"s","type":"event","url":"https://a.ru/","name":"pay",
            "props":{"plan":"Иванов Иван Иванович","fio":"x","n":1200.5}}"#;
        let (a, _) = rows(run(body, facts(CHROME, false), &site));
        let a = a.unwrap();
        assert_eq!(
            (a.prop_keys, a.prop_values),
            (vec!["n".into(), "plan".into()], vec!["1200.5".into(), "[name]".into()])
        );
        let body = r#"{"site":"s","type":"error","url":"https://a.ru/","err":{
            "msg":"TypeError: Cannot read properties of undefined (reading 'total') at 12:7, card 4111 1111 1111 1111"}}"#;
        let (_, t) = rows(run(body, facts(CHROME, false), &site));
        assert_eq!(
            t.unwrap().error_message,
            "TypeError: Cannot read properties of undefined (reading '<s>') at <n>:<n>, card [card]"
        );
    }

    #[test]
    fn free_text_is_scrubbed_whole_then_cut() {
        let message = format!("{} 4111 1111 1111 1111", "a".repeat(990));
        let body = json!({"site": "s", "type": "error", "url": "https://a.ru/", "err": {"msg": message}}).to_string();
        let (_, t) = rows(run(&body, facts(CHROME, false), &site(false, DoNotTrack::Anonymous)));
        let stored = t.unwrap().error_message;
        assert_eq!(stored.chars().count(), 997, "the card becomes [card], which fits whole");
        assert!(stored.ends_with(" [card]"), "{stored}");
    }

    #[test]
    fn the_requests_own_address_is_removed_from_stored_text() {
        let body = r#"{"site":"s","type":"error","url":"https://a.ru/ip/host-198.51.100.23?utm_term=198.51.100.23",
            "ref":"http://198.51.100.23/","err":{"msg":"blocked 198.51.100.23, not 198.51.100.24"}}"#;
        let (_, t) = rows(run(body, facts(CHROME, false), &site(false, DoNotTrack::Anonymous)));
        let t = t.unwrap();
        assert_eq!((t.path.as_str(), t.ref_host.as_str()), ("/ip/host-[ip]", "[ip]"));
        assert_eq!(t.error_message, "blocked [ip], not [ip]", "any address in free text goes");
        let mut text = "see https://a.ru/?ip=2001%3ADB8%3A%3A1 or 2001:db8::1".to_owned();
        remove_ip(&mut text, "2001:db8::1");
        assert_eq!(text, "see https://a.ru/?ip=[ip] or [ip]");
    }

    #[test]
    fn timing_and_errors_are_troubleshooting_only() {
        let (a, t) = rows(run(
            r#"{"site":"s","type":"timing","url":"https://a.ru/","t":{"lcp":1200}}"#,
            facts(CHROME, false),
            &site(false, DoNotTrack::Anonymous),
        ));
        assert!(a.is_none());
        assert_eq!(t.unwrap().lcp_ms, Some(1200));
    }
}
