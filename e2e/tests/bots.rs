//! Bots beyond the User-Agent, through a real collector and ClickHouse (docs/privacy.md, Bots):
//! each signal keeps a browser-looking beacon out of the audience store and records why in
//! `bot_reason`; a hosting network is a flag unless the site excludes it. The lists are the
//! ones `scripts/bots.sh` fetches; the address's network comes from the real GeoIP ASN database
//! through `X-Forwarded-For` (the test's loopback is a trusted proxy).

use e2e::{Install, bots_dir, geoip_dir};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
/// In Amazon's AS16509 and Hetzner's AS24940 in the GeoLite2 ASN database; TEST-NET-3 is in none.
const AMAZON: &str = "3.5.140.2";
const HETZNER: &str = "95.216.1.1";
const NOWHERE: &str = "203.0.113.9";

/// A beacon of the test and what must be stored for it.
struct Case {
    path: &'static str,
    agent: &'static str,
    ip: &'static str,
    reason: &'static str,
    extras: &'static str,
    origin: bool,
    site: &'static str,
    bot: bool,
}

impl Case {
    /// A pageview of site `lk` with an `Origin`, counted, with `reason` recorded.
    fn new(path: &'static str, agent: &'static str, ip: &'static str, reason: &'static str) -> Self {
        Case { path, agent, ip, reason, extras: "", origin: true, site: "lk", bot: false }
    }
    fn extras(self, extras: &'static str) -> Self {
        Case { extras, ..self }
    }
    fn without_origin(self) -> Self {
        Case { origin: false, ..self }
    }
    fn on_api(self) -> Self {
        Case { site: "api", ..self }
    }
    fn bot(self) -> Self {
        Case { bot: true, ..self }
    }
}

#[test]
fn every_signal_keeps_bots_out_and_says_why() {
    let install = Install::new("bots");
    let (geo, bots) = (geoip_dir(), bots_dir());
    let c = install.collector(&format!(
        "[geoip]\nasn_db = \"{asn}\"\n\
         [bots]\nlist = \"{list}\"\nhosting = \"{hosting}\"\nspam_referrers = [\"darodar.com\"]\n\
         [[sites]]\nid = \"lk\"\nallowed_hosts = [\"lk.example.ru\"]\n\
         [[sites]]\nid = \"api\"\nallowed_hosts = [\"api.example.ru\"]\ncount_without_origin = true\nexclude_hosting = true\n",
        asn = geo.join("asn.mmdb").display(),
        list = bots.join("crawler-user-agents.json").display(),
        hosting = bots.join("cloud_providers.json").display(),
    ));
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
    assert!(c.log_text().contains("hosting list loaded"), "{}", c.log_text());

    let cases = [
        Case::new("/person", FIREFOX, NOWHERE, ""),
        Case::new("/crawler", GOOGLEBOT, NOWHERE, "list:Googlebot\\/").bot(),
        Case::new("/automated", FIREFOX, NOWHERE, "automation:webdriver").extras(r#","auto":"webdriver""#).bot(),
        Case::new("/no-origin", FIREFOX, NOWHERE, "transport:no_origin").without_origin().bot(),
        Case::new("/spam", FIREFOX, NOWHERE, "referrer_spam:darodar.com")
            .extras(r#","ref":"https://forum.darodar.com/""#)
            .bot(),
        Case::new("/cloud", FIREFOX, AMAZON, "hosting:Amazon"),
        // A site that sends from servers counts POSTs without Origin, and excludes clouds.
        Case::new("/server", FIREFOX, NOWHERE, "").on_api().without_origin(),
        Case::new("/cloud-excluded", FIREFOX, HETZNER, "hosting:Hetzner").on_api().bot(),
        Case::new("/api-crawler", GOOGLEBOT, HETZNER, "list:Googlebot\\/").on_api().without_origin().bot(),
    ];
    for case in &cases {
        let body = format!(
            r#"{{"site":"{}","url":"https://{}.example.ru{}"{}}}"#,
            case.site, case.site, case.path, case.extras
        );
        let headers = [("user-agent", case.agent), ("x-forwarded-for", case.ip)];
        let reply = if case.origin { c.beacon(&body, &headers) } else { c.beacon_without_origin(&body, &headers) };
        assert_eq!(reply.status, 202, "{}: {}", case.path, reply.text());
    }
    let trouble = install.troubleshooting();
    install.wait_for_count(&format!("SELECT count() FROM {trouble}"), cases.len() as u64);
    // Each table's rows are an insert of their own: wait for the audience rows too.
    let audience = install.audience();
    let people = cases.iter().filter(|case| !case.bot).count() as u64;
    install.wait_for_count(&format!("SELECT count() FROM {audience}"), people);
    for Case { path, bot, reason, .. } in cases {
        let rows = install.sql_rows(&format!("SELECT is_bot, bot_reason FROM {trouble} WHERE path = '{path}'"));
        assert_eq!(rows, [serde_json::json!({"is_bot": u8::from(bot), "bot_reason": reason})], "{path}");
        let counted = install.sql_u64(&format!("SELECT count() FROM {audience} WHERE path = '{path}'"));
        assert_eq!(counted, u64::from(!bot), "{path}: in the audience store only if not a bot");
    }

    // Counted by the signal that told; the flag alone is not a bot hit.
    for (signal, hits) in [("user_agent", 2), ("automation", 1), ("transport", 1), ("referrer_spam", 1), ("hosting", 1)]
    {
        assert_eq!(c.metric_sum("webstats_collector_bot_hits_total", &[("signal", signal)]), hits as f64, "{signal}");
    }
}
