//! The ingestion spine, end to end: beacons over HTTP into the real collector, rows read back
//! from the real ClickHouse, reports from the real aggregator.

use std::{collections::HashMap, collections::HashSet, net::IpAddr};

use e2e::{Install, cluster::Cluster, scan, sql_rows, sql_u64};
use store::pseudonym::CookieKey;

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
const YANDEX_BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 YaBrowser/23.11.0.0 Safari/537.36";
const EDGE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const YANDEXBOT: &str = "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)";
const BINGBOT: &str = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)";

/// (User-Agent, is a crawler).
const AGENTS: [(&str, bool); 8] = [
    (CHROME, false),
    (FIREFOX, false),
    (SAFARI_IPHONE, false),
    (YANDEX_BROWSER, false),
    (EDGE, false),
    (GOOGLEBOT, true),
    (YANDEXBOT, true),
    (BINGBOT, true),
];

/// Addresses whose country and ASN the test MMDBs know (stable owners).
const KNOWN_IPS: [(&str, &str, u32); 7] = [
    ("77.88.8.8", "RU", 13238),
    ("8.8.8.8", "US", 15169),
    ("193.0.6.139", "NL", 3333),
    ("212.58.244.22", "GB", 2818),
    ("31.13.72.36", "IE", 32934),
    ("2a02:6b8::feed:ff", "RU", 13238),
    ("2001:4860:4860::8888", "US", 15169),
];

/// (URL sent, path expected after URL hygiene).
const PAGES: [(&str, &str); 10] = [
    ("https://lk.example.ru/", "/"),
    ("https://lk.example.ru/accounts/4402117735/bills?tab=2#pay", "/accounts/:id/bills"),
    ("https://lk.example.ru/pay", "/pay"),
    ("https://lk.example.ru/help/faq/", "/help/faq"),
    ("https://lk.example.ru/meters/00012345678/readings", "/meters/:id/readings"),
    ("https://lk.example.ru/?utm_source=mail&utm_campaign=nov", "/"),
    ("https://lk.example.ru/contracts/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/contracts/:id"),
    ("https://lk.example.ru/profile?email=ivan%40mail.ru", "/profile"),
    ("https://lk.example.ru/news/2026/11", "/news/2026/11"),
    ("https://lk.example.ru/invoice/INV-2026-000123.pdf", "/invoice/:id"),
];

const COOKIE_KEY: &str = "test-cookie-key-0123456789-abcdefghijklmnop";

fn ips() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = KNOWN_IPS.iter().map(|(ip, _, _)| ip.parse().unwrap()).collect();
    ips.extend((0..13).map(|i| format!("95.108.213.{}", 10 + i * 7).parse::<IpAddr>().unwrap()));
    ips
}

struct Sent {
    ip: IpAddr,
    agent: &'static str,
    is_bot: bool,
    page: usize,
    is_event: bool,
    cookie: String,
}

fn sent(i: usize, ips: &[IpAddr]) -> Sent {
    let (agent, is_bot) = AGENTS[(i / ips.len()) % AGENTS.len()];
    Sent {
        ip: ips[i % ips.len()],
        agent,
        is_bot,
        page: (i * 7 + i / 10) % PAGES.len(),
        is_event: i.is_multiple_of(25),
        cookie: format!("ck{:04}-9f1c-secret", i % 50),
    }
}

#[test]
fn thousand_beacons_become_rows_in_the_right_stores() {
    spine(&Install::new("spine"));
}

/// The same scenario, the same answers, on 2 shards x 2 replicas (docs/operations.md, Running
/// a cluster): the collector inserts through the Distributed ingest tables and every query
/// reads the Distributed stores.
#[test]
fn the_spine_gives_the_same_answers_on_a_two_by_two_cluster() {
    let cluster = Cluster::start("spine", 2, 2);
    spine(&Install::on_cluster(&cluster, "spinecluster"));
}

/// A thousand beacons of people and crawlers through the collector; the rows, the pseudonyms,
/// `aggregator stats` and a privacy scan of every server's files.
fn spine(install: &Install) {
    let geo = e2e::geoip_dir();
    let collector = install.collector_with(
        &format!(
            "[sink]\nflush_interval_ms = 200\n\
             [geoip]\nlocation_db = \"{}\"\nasn_db = \"{}\"\n\
             [privacy]\ncookie_key_env = \"TEST_COOKIE_KEY\"\n\
             [[sites]]\nid = \"portal\"\nallowed_hosts = [\"lk.example.ru\"]\ncookie_mode = true\n",
            geo.join("country.mmdb").display(),
            geo.join("asn.mmdb").display()
        ),
        &[("TEST_COOKIE_KEY", COOKIE_KEY)],
    );
    collector.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");

    let ips = ips();
    let beacons: Vec<Sent> = (0..1000).map(|i| sent(i, &ips)).collect();
    let sent_at = std::time::SystemTime::now();
    for (i, b) in beacons.iter().enumerate() {
        let body = if b.is_event {
            serde_json::json!({"site": "portal", "type": "event", "name": "download", "url": PAGES[b.page].0,
                "props": {"file": "bill.pdf"}, "sid": b.cookie})
        } else {
            serde_json::json!({"site": "portal", "url": PAGES[b.page].0, "ref": "https://yandex.ru/search/?text=lk",
                "sw": 1920, "lang": "ru-RU"})
        };
        let ip = b.ip.to_string();
        let cookie = format!("_wsid={}", b.cookie);
        let mut headers =
            vec![("user-agent", b.agent), ("x-forwarded-for", ip.as_str()), ("origin", "https://lk.example.ru")];
        if !b.is_event {
            headers.push(("cookie", cookie.as_str()));
        }
        let reply = collector.beacon(&body.to_string(), &headers);
        assert_eq!(reply.status, 202, "beacon {i}: {}", reply.text());
        assert_eq!(reply.header("access-control-allow-origin"), Some("https://lk.example.ru"));
    }

    let people: Vec<&Sent> = beacons.iter().filter(|b| !b.is_bot).collect();
    let bots = beacons.len() - people.len();
    assert!(bots > 0 && people.len() > 500, "the sample mixes people and bots");

    // Every non-bot beacon is one audience row; every beacon one troubleshooting row.
    let audience = install.audience();
    let trouble = install.troubleshooting();
    assert_eq!(
        install.wait_for_count(&format!("SELECT count() FROM {audience}"), people.len() as u64),
        people.len() as u64
    );
    assert_eq!(install.wait_for_count(&format!("SELECT count() FROM {trouble}"), 1000), 1000);
    install.sync_replicas();
    assert_eq!(install.sql_u64(&format!("SELECT count() FROM {trouble} WHERE is_bot = 1")), bots as u64);
    assert_eq!(install.sql_u64(&format!("SELECT count() FROM {audience} WHERE device = 'crawler'")), 0);

    // Known IPs resolve to their country and ASN (rows found through the IP pseudonym).
    let (today, tomorrow) = install.salts_at(sent_at);
    for (ip, country, asn) in KNOWN_IPS {
        let ip_id = today.ip_id(ip.parse().unwrap());
        let rows = install.sql_rows(&format!("SELECT DISTINCT country, asn FROM {trouble} WHERE ip_id = {ip_id}"));
        assert_eq!(rows, vec![serde_json::json!({"country": country, "asn": asn})], "{ip}");
    }
    assert_eq!(
        install
            .sql(&format!("SELECT DISTINCT country FROM {audience} WHERE country != '' ORDER BY country FORMAT TSV")),
        "GB\nIE\nNL\nRU\nUS\n"
    );

    // Known User-Agents parse to the expected browser.
    for (agent, browser, version, device) in [
        (CHROME, "Chrome", "120", "pc"),
        (FIREFOX, "Firefox", "121", "pc"),
        (SAFARI_IPHONE, "Safari", "17", "smartphone"),
    ] {
        let agent_sql = agent.replace('\'', "\\'");
        let rows = install.sql_rows(&format!(
            "SELECT DISTINCT browser, browser_version, device FROM {trouble} WHERE user_agent = '{agent_sql}'"
        ));
        assert_eq!(rows, vec![serde_json::json!({"browser": browser, "browser_version": version, "device": device})]);
    }

    // One visitor id per (site, IP, User-Agent) under today's salt; another under tomorrow's.
    let mut per_person: HashMap<(IpAddr, &str), u64> = HashMap::new();
    for b in &people {
        *per_person.entry((b.ip, b.agent)).or_default() += 1;
    }
    for ((ip, agent), count) in per_person.iter().take(20) {
        let id = today.visitor_id("portal", *ip, agent);
        assert_eq!(install.sql_u64(&format!("SELECT count() FROM {audience} WHERE visitor_id = {id}")), *count);
        let other_day = tomorrow.visitor_id("portal", *ip, agent);
        assert_ne!(id, other_day);
        assert_eq!(install.sql_u64(&format!("SELECT count() FROM {audience} WHERE visitor_id = {other_day}")), 0);
    }
    assert_eq!(
        install.sql_u64(&format!("SELECT uniqExact(visitor_id) FROM {audience}")),
        per_person.len() as u64,
        "visitor ids are one per (IP, User-Agent)"
    );

    // Cookie pseudonyms: the Cookie header and `sid` give the same pseudonym.
    let key = CookieKey::from_material(COOKIE_KEY.as_bytes()).unwrap();
    let cookie = &people[0].cookie;
    let expected = people.iter().filter(|b| b.cookie == *cookie).count() as u64;
    let cookie_id = key.cookie_id("portal", cookie);
    assert_eq!(install.sql_u64(&format!("SELECT count() FROM {audience} WHERE cookie_id = {cookie_id}")), expected);
    assert_eq!(install.sql_u64(&format!("SELECT count() FROM {audience} WHERE cookie_id = 0")), 0);

    // `aggregator stats --json` reports exactly what was sent.
    let out = install.aggregator(&["stats", "--site", "portal", "--json", "--top", "20"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pageviews: Vec<&&Sent> = people.iter().filter(|b| !b.is_event).collect();
    assert_eq!(stats["pageviews"], pageviews.len());
    assert_eq!(stats["events"], people.len() - pageviews.len());
    assert_eq!(stats["anonymous_pageviews"], 0);
    assert_eq!(stats["visitors"], per_person.len());
    assert_eq!(stats["bot_hits"], bots);
    let mut expected_pages: HashMap<&str, u64> = HashMap::new();
    for b in &pageviews {
        *expected_pages.entry(PAGES[b.page].1).or_default() += 1;
    }
    let reported: HashMap<&str, u64> = stats["top_pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap(), p["pageviews"].as_u64().unwrap()))
        .collect();
    assert_eq!(reported, expected_pages);

    // Privacy scan: no raw IP (text, 4- and 16-byte forms) or cookie value anywhere under
    // the ClickHouse run directory or in the collector's log.
    let status = collector.stop();
    assert!(status.success(), "collector exit: {status:?}");
    let log = install.dir.path().to_owned();
    let servers: Vec<_> = install.nodes().iter().map(|n| n.dir().to_owned()).collect();
    let mut everywhere: Vec<_> = servers.iter().flat_map(|dir| scan::files_under(dir)).collect();
    everywhere.extend(scan::files_under(&log));
    // Other tests' databases (prefix `t_`) are left out of `own`.
    let own: Vec<_> = everywhere
        .iter()
        .filter(|f| match servers.iter().find_map(|dir| f.strip_prefix(dir).ok()) {
            Some(relative) => {
                let relative = relative.to_string_lossy();
                relative.contains(&install.prefix) || !relative.contains("/t_")
            }
            None => true,
        })
        .cloned()
        .collect();
    let cookies: HashSet<&str> = beacons.iter().map(|b| b.cookie.as_str()).collect();
    let mut long_needles: Vec<scan::Needle> = cookies.iter().map(|c| scan::text_needle("cookie value", c)).collect();
    let mut short_needles = Vec::new();
    for ip in &ips {
        for needle in scan::ip_needles(*ip) {
            if needle.bytes.len() == 4 { short_needles.push(needle) } else { long_needles.push(needle) }
        }
    }
    // Positive control: values that are stored are found, inside compressed column files too.
    let control = [
        scan::text_needle("stored path", "/meters/:id/readings"),
        scan::text_needle("stored agent", "YaBrowser/23.11.0.0"),
    ];
    assert!(scan::find(&own, &control).len() >= 2, "the scan cannot see stored values; it would prove nothing");
    // Text and 16-byte forms everywhere; 4-byte forms, which random pseudonyms could match by
    // chance in a large tree, in this test's own databases, the server's shared files and logs.
    let hits: Vec<_> =
        scan::find(&everywhere, &long_needles).into_iter().chain(scan::find(&own, &short_needles)).collect();
    assert!(hits.is_empty(), "raw identifiers found on disk or in logs: {hits:#?}");
}

#[test]
fn migrate_is_idempotent_and_rows_match_the_tables() {
    let install = Install::new("migrate");
    let out = install.aggregator(&["migrate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let versions: Vec<u32> = store::MIGRATIONS.iter().map(|m| m.version).collect();
    assert!(
        stdout.contains(&format!("applied: []; already applied: {versions:?}"))
            && stdout.contains("salts created for 0"),
        "{stdout}"
    );
    assert_eq!(
        sql_u64(&format!("SELECT count() FROM {}_admin.schema_migrations", install.prefix)),
        versions.len() as u64
    );
    assert_eq!(sql_u64(&format!("SELECT count() FROM {}_meta.salts", install.prefix)), 2);

    // A run interrupted before it recorded anything repeats every statement: each is
    // repeatable (`IF NOT EXISTS`, and an `ADD COLUMN` whose column exists is skipped).
    install.sql(&format!("TRUNCATE TABLE {}_admin.schema_migrations", install.prefix));
    let again = install.aggregator(&["migrate"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains(&format!("applied: {versions:?}; already applied: []")), "{stdout}");

    // RowBinary is positional: the row types must list the tables' columns in order.
    let columns = |table: &str| -> Vec<String> {
        sql_rows(&format!("DESCRIBE TABLE {table}")).iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
    };
    use clickhouse::Row;
    assert_eq!(columns(&install.audience()), store::AudienceRow::COLUMN_NAMES);
    assert_eq!(columns(&install.troubleshooting()), store::TroubleshootingRow::COLUMN_NAMES);
    assert_eq!(columns(&format!("{}_meta.salts", install.prefix)), store::SaltRow::COLUMN_NAMES);
    assert_eq!(columns(&format!("{}_admin.schema_migrations", install.prefix)), store::MigrationRow::COLUMN_NAMES);
    assert_eq!(columns(&format!("{}_admin.audit", install.prefix)), store::AuditRow::COLUMN_NAMES);
    assert_eq!(columns(&format!("{}_meta.blocklist", install.prefix)), store::BlocklistRow::COLUMN_NAMES);
    assert_eq!(columns(&format!("{}_meta.erasures", install.prefix)), store::ErasureRow::COLUMN_NAMES);
    for rollup in store::ROLLUPS {
        assert_eq!(
            columns(&format!("{}_rollups.{}", install.prefix, rollup.table)),
            rollup.columns(),
            "{}",
            rollup.table
        );
    }
    // The ingest path: Null tables and Buffer tables have exactly the stores' columns.
    for (twin, store_table) in
        [("ingest.audience", install.audience()), ("stage.troubleshooting", install.troubleshooting())]
    {
        assert_eq!(columns(&format!("{}_{twin}", install.prefix)), columns(&store_table), "{twin}");
    }
}
