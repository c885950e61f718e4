//! What the integration tests share: one pipeline with the four combinations of cookie mode and
//! do-not-track handling, and every stored string of its rows.

#![allow(dead_code)] // each test crate uses its part

use std::sync::LazyLock;

use beacon::{
    AgentParser, Blocklist, Controls, DoNotTrack, GeoDb, Outcome, Pipeline, RequestFacts, Routes, Signals, Site,
    from_json as parse_beacon,
};
use store::{
    AudienceRow, TroubleshootingRow,
    pseudonym::{CookieKey, SaltKeys},
};

// ---------------------------------------------------------------------------------------------
// Fixture: one pipeline, the four combinations of cookie mode and do-not-track handling.
// ---------------------------------------------------------------------------------------------

pub struct Fixture {
    pub pipeline: Pipeline,
    pub sites: Vec<Site>,
    pub keys: SaltKeys,
    pub blocklist: Blocklist,
}

pub static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let sites = [
        (false, DoNotTrack::Anonymous),
        (true, DoNotTrack::Anonymous),
        (false, DoNotTrack::Drop),
        (true, DoNotTrack::Drop),
    ]
    .into_iter()
    .map(|(cookie_mode, do_not_track)| Site {
        id: "s".into(),
        allowed_hosts: vec!["a.ru".into(), "*.a.ru".into()],
        cookie_mode,
        do_not_track,
        // Kept besides the utm_* parameters, which every site keeps.
        query_allowlist: vec!["tab".into(), "page".into()],
        routes: Routes::from(vec!["/invoices/:id".to_owned(), "/accounts/:id/bills".to_owned()]),
        ..Site::default()
    })
    .collect();
    Fixture {
        pipeline: Pipeline {
            agents: AgentParser::new(1_024, &[] as &[&str]),
            geo: GeoDb::open(None, None).expect("no GeoIP databases"),
            signals: Signals::default(),
            cookie_key: CookieKey::from_material(&[9; 32]),
            ipv4_prefix_len: 24,
            ipv6_prefix_len: 48,
        },
        sites,
        keys: SaltKeys::derive(&[1; 32]),
        blocklist: Blocklist::default(),
    }
});

pub fn process(body: &[u8], facts: RequestFacts<'_>, site: usize) -> Option<Outcome> {
    let beacon = parse_beacon(body).ok()?;
    let f = &*FIXTURE;
    Some(f.pipeline.process(beacon, facts, &f.sites[site], Controls { keys: &f.keys, blocklist: &f.blocklist }))
}

/// Every `String` a stored row holds, named. The rows are destructured field by field, so a
/// text column added to `store::rows` without being listed here fails to compile.
pub fn stored_strings<'a>(
    audience: &'a Option<AudienceRow>,
    troubleshooting: &'a Option<TroubleshootingRow>,
) -> Vec<(String, &'a str)> {
    let mut out: Vec<(String, &'a str)> = Vec::new();
    if let Some(AudienceRow {
        date: _,
        ts: _,
        site,
        r#type: _,
        visitor_id: _,
        cookie_id: _,
        host,
        path,
        query,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_term,
        utm_content,
        ref_host,
        ref_path,
        name,
        prop_keys,
        prop_values,
        browser,
        browser_version,
        os,
        os_version,
        device,
        country,
        region,
        city,
        screen_width: _,
        lang,
    }) = audience
    {
        for (field, value) in [
            ("site", site),
            ("host", host),
            ("path", path),
            ("query", query),
            ("utm_source", utm_source),
            ("utm_medium", utm_medium),
            ("utm_campaign", utm_campaign),
            ("utm_term", utm_term),
            ("utm_content", utm_content),
            ("ref_host", ref_host),
            ("ref_path", ref_path),
            ("name", name),
            ("browser", browser),
            ("browser_version", browser_version),
            ("os", os),
            ("os_version", os_version),
            ("device", device),
            ("country", country),
            ("region", region),
            ("city", city),
            ("lang", lang),
        ] {
            out.push((format!("audience.{field}"), value));
        }
        out.extend(prop_keys.iter().enumerate().map(|(i, k)| (format!("audience.prop_keys[{i}]"), k.as_str())));
        out.extend(prop_values.iter().enumerate().map(|(i, v)| (format!("audience.prop_values[{i}]"), v.as_str())));
    }
    if let Some(TroubleshootingRow {
        date: _,
        ts: _,
        site,
        r#type: _,
        is_bot: _,
        visitor_id: _,
        cookie_id: _,
        ip_id: _,
        network,
        asn: _,
        as_org,
        country,
        host,
        path,
        ref_host,
        ref_path,
        name,
        user_agent,
        browser,
        browser_version,
        os,
        os_version,
        device,
        ttfb_ms: _,
        fcp_ms: _,
        dcl_ms: _,
        load_ms: _,
        lcp_ms: _,
        inp_ms: _,
        cls: _,
        error_message,
        error_source,
        error_line: _,
        error_col: _,
        error_stack,
        bot_reason,
    }) = troubleshooting
    {
        for (field, value) in [
            ("site", site),
            // The network prefix (`203.0.113.0/24`) is checked too: the generated address is
            // never its own network address, so the prefix cannot spell the raw address.
            ("network", network),
            ("as_org", as_org),
            ("country", country),
            ("host", host),
            ("path", path),
            ("ref_host", ref_host),
            ("ref_path", ref_path),
            ("name", name),
            ("user_agent", user_agent),
            ("browser", browser),
            ("browser_version", browser_version),
            ("os", os),
            ("os_version", os_version),
            ("device", device),
            ("error_message", error_message),
            ("error_source", error_source),
            ("error_stack", error_stack),
            ("bot_reason", bot_reason),
        ] {
            out.push((format!("troubleshooting.{field}"), value));
        }
    }
    out
}

pub fn percent_decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}
