//! The collector's per-beacon CPU work (the `beacon` crate), stage by stage, next to a baseline: parsing the same
//! body into a `serde_json::Value`, the least any JSON endpoint does. Run with
//! `cargo bench -p hot-path-bench`; GeoIP lookups use `.work/geoip/*.mmdb` when present
//! (scripts/geoip.sh), and are skipped otherwise.

use std::{
    hint::black_box,
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

use beacon::{
    AgentParser, Blocklist, Controls, EncodedBeacon, GeoDb, HostingNetworks, Outcome, Pipeline, RequestFacts, Routes,
    Signals, Site, SpamReferrers, signals::Evidence,
};
use criterion::{Criterion, criterion_group, criterion_main};
use store::pseudonym::{CookieKey, SaltKeys};

const BODY: &[u8] = br#"{"site":"portal","url":"https://lk.example.ru/accounts/4402117735/bills?utm_source=mail&tab=2#pay","ref":"https://yandex.ru/search/?text=lk","sw":1920,"lang":"ru-RU"}"#;
/// Free text as a utility's portal sends it: an event with props, an error report, and an
/// event whose text carries personal data of every category the scrubbers look for.
const EVENT: &[u8] = r#"{"site":"portal","type":"event","url":"https://lk.example.ru/pay","name":"Оплата картой","props":{"tariff":"Двухзонный","amount":"1 200,50 ₽","step":"2","method":"card"}}"#.as_bytes();
const ERROR: &[u8] = br#"{"site":"portal","type":"error","url":"https://lk.example.ru/pay","err":{"msg":"TypeError: Cannot read properties of undefined (reading 'total')","src":"https://lk.example.ru/static/js/main.3f2a1b9c.js","line":1,"col":48213,"stack":"TypeError: Cannot read properties of undefined (reading 'total')\n    at Bill (https://lk.example.ru/static/js/main.3f2a1b9c.js:1:48213)\n    at renderWithHooks (https://lk.example.ru/static/js/vendor.7d1e2f.js:2:51234)\n    at mountIndeterminateComponent (https://lk.example.ru/static/js/vendor.7d1e2f.js:2:54012)"}}"#;
const PERSONAL: &[u8] = r#"{"site":"portal","type":"event","url":"https://lk.example.ru/profile","name":"Сохранение профиля","props":{"fio":"Иванов Иван Иванович","address":"г. Москва, ул. Ленина, д. 5, кв. 12","phone":"+7 (912) 345-67-89","email":"ivan.petrov@mail.ru","account":"л/с 123456789012","card":"4111 1111 1111 1111","snils":"112-233-445 95"}}"#.as_bytes();
const UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

fn pipeline() -> Pipeline {
    let geo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.work/geoip");
    let (country, asn) = (geo.join("country.mmdb"), geo.join("asn.mmdb"));
    let present = country.is_file() && asn.is_file();
    // The maintained bot list when scripts/bots.sh has fetched it, as the shipped config loads it.
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.work/bots/crawler-user-agents.json");
    let agents = AgentParser::new(20_000, &[] as &[&str]);
    let agents = if list.is_file() { agents.with_list(beacon::BotList::open(&list).unwrap()) } else { agents };
    let hosting = list.with_file_name("cloud_providers.json");
    let hosting = if hosting.is_file() { HostingNetworks::open(&hosting).unwrap() } else { HostingNetworks::default() };
    Pipeline {
        agents,
        geo: if present { GeoDb::open(Some(&country), Some(&asn)).unwrap() } else { GeoDb::open(None, None).unwrap() },
        signals: Signals { hosting, spam_referrers: SpamReferrers::new(&["darodar.com", "semalt.com"]) },
        cookie_key: CookieKey::from_material(&[7; 32]),
        ipv4_prefix_len: 24,
        ipv6_prefix_len: 48,
    }
}

fn site() -> Site {
    Site {
        id: "portal".into(),
        allowed_hosts: vec!["lk.example.ru".into()],
        cookie_mode: true,
        query_allowlist: vec!["tab".into()],
        routes: Routes::default(),
        ..Site::default()
    }
}

fn facts(ua: &str) -> RequestFacts<'_> {
    RequestFacts {
        ip: "77.88.8.8".parse::<IpAddr>().unwrap(),
        user_agent: ua,
        cookie: Some("0f3c9a2e-7d41-4b8e-9c55-2a1d6e0b7f13"),
        do_not_track: false,
        received_at: 1_764_000_000,
        post_without_origin: false,
    }
}

/// What the handler does with the outcome before the sink: encode the rows (RowBinary).
fn stored(outcome: Outcome) -> Option<EncodedBeacon> {
    match outcome {
        Outcome::Store { rows, .. } => Some(EncodedBeacon::encode(rows)),
        _ => None,
    }
}

fn benches(c: &mut Criterion) {
    let pipeline = pipeline();
    let site = site();
    let keys = SaltKeys::derive(&[1; 32]);
    let blocklist = Blocklist::default();
    let controls = Controls { keys: &keys, blocklist: &blocklist };

    let mut group = c.benchmark_group("per_beacon");
    group.bench_function("baseline_json_value", |b| {
        b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(black_box(BODY)).unwrap()))
    });
    group.bench_function("parse_beacon", |b| b.iter(|| black_box(beacon::from_json(black_box(BODY)).unwrap())));
    group.bench_function("parse_process_encode_cached_agent", |b| {
        b.iter(|| {
            let beacon = beacon::from_json(black_box(BODY)).unwrap();
            black_box(stored(pipeline.process(beacon, facts(UA), &site, controls)))
        })
    });
    // A new User-Agent every time: the cost of a cache miss (a woothee parse and an insert).
    let mut n = 0u64;
    group.bench_function("parse_process_encode_new_agent", |b| {
        b.iter(|| {
            n += 1;
            let ua = format!("{UA} build/{n}");
            let beacon = beacon::from_json(black_box(BODY)).unwrap();
            black_box(stored(pipeline.process(beacon, facts(&ua), &site, controls)))
        })
    });
    group.finish();

    // Free-text scrubbing inside the whole per-beacon work, for three kinds of beacon.
    let mut group = c.benchmark_group("scrub");
    for (name, body) in [("event", EVENT), ("error", ERROR), ("personal_data", PERSONAL)] {
        group.bench_function(format!("parse_process_encode_{name}"), |b| {
            b.iter(|| {
                let beacon = beacon::from_json(black_box(body)).unwrap();
                black_box(stored(pipeline.process(beacon, facts(UA), &site, controls)))
            })
        });
    }
    // The scrubber alone on the same kinds of text.
    let texts = [
        ("text_ordinary", "Оплата картой: тариф «Двухзонный», 1 200,50 ₽, шаг 2 из 5"),
        ("text_error", "TypeError: Cannot read properties of undefined (reading 'total')"),
        ("text_personal_data", "Иванов Иван Иванович, г. Москва, ул. Ленина, д. 5, кв. 12, +7 (912) 345-67-89"),
    ];
    for (name, text) in texts {
        group.bench_function(name, |b| b.iter(|| black_box(beacon::scrub::text(black_box(text)))));
    }
    group.finish();

    let mut group = c.benchmark_group("stages");
    let ip: IpAddr = "77.88.8.8".parse().unwrap();
    group.bench_function("visitor_id", |b| b.iter(|| black_box(keys.visitor_id("portal", black_box(ip), UA))));
    // A new /24 at each lookup (the databases' search trees) and 4,096 /24s in turn, as
    // load.sh's addresses (the cache of network prefixes).
    let network = |n: u32| {
        let h = n.wrapping_mul(2_654_435_761);
        IpAddr::from(Ipv4Addr::from((1 + h % 222) << 24 | (h >> 8 & 0xffff) << 8 | 1))
    };
    let mut n = 0u32;
    group.bench_function("geo_lookup_new_network", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            black_box(pipeline.geo.lookup(network(n)))
        })
    });
    group.bench_function("geo_lookup_seen_network", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            black_box(pipeline.geo.lookup(network(n % 4_096)))
        })
    });
    group.bench_function("agent_cached", |b| b.iter(|| black_box(pipeline.agents.parse(black_box(UA)))));
    // The signals after the User-Agent run for every beacon, cached agent or not: here all of
    // them are asked (a browser, no hint, a referrer, an address in a listed network).
    let (agent, _) = pipeline.agents.parse(UA);
    let evidence = Evidence { automation: None, post_without_origin: false, referrer_host: "yandex.ru", asn: 13238 };
    group.bench_function("bot_verdict", |b| {
        b.iter(|| {
            black_box(pipeline.signals.verdict(
                &agent,
                |i| pipeline.agents.list_pattern(i),
                black_box(evidence),
                &site.bots,
            ))
        })
    });
    group.finish();
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
