//! Personal data sent in free text and URLs reaches no file (docs/privacy-model.md section 4):
//! every category a personal-account portal handles goes to a real collector in event names,
//! props, error reports, page paths, kept query values, `utm_*`, fragments and referrers. Then
//! the ClickHouse data directory, the spool, `dead-letter/` and the logs are scanned for it,
//! as text and percent-encoded, inside ClickHouse's compressed blocks too, with the
//! placeholders that replaced it as the positive control.
//!
//! The rows pass through each place in turn: first the audience ingest table refuses every
//! batch for its data (its rows become dead letters) and the troubleshooting one is away
//! (its rows wait in the spool); the spool and dead letters are scanned while they hold them.
//! Then both tables come back, the spool replays, the same beacons are sent again, and
//! ClickHouse's files and the logs are scanned.

use std::time::Duration;

use e2e::{Collector, Install, scan};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

/// (category, as sent, parts that must be found nowhere).
const PERSONAL: [(&str, &str, &[&str]); 15] = [
    ("full name", "Достоевская Ольга Петровна", &["Достоевская", "Петровна"]),
    ("name with initials", "Ковальчук С. Д.", &["Ковальчук"]),
    ("postal address", "123456, г. Москва, ул. Маршала Жукова, д. 15, кв. 47", &["Жукова", "кв. 47", "123456"]),
    ("phone", "+7 (912) 345-67-89", &["345-67-89", "9123456789"]),
    ("e-mail", "olga.dostoevskaya@mail.ru", &["olga.dostoevskaya"]),
    ("IDN e-mail", "ольга@почта.рф", &["ольга@"]),
    ("INN", "ИНН 500100732259", &["500100732259"]),
    ("SNILS", "СНИЛС 112-233-445 95", &["112-233-445", "11223344595"]),
    ("passport", "паспорт 4510 123456", &["4510 123456", "4510123456"]),
    ("card", "4111 1111 1111 1111", &["4111 1111 1111 1111", "4111111111111111"]),
    ("account number", "л/с 770012345678", &["770012345678"]),
    ("contract number", "договор № 47-1234/2026", &["47-1234/2026"]),
    (
        "JWT",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI3NzAwMTIzNDU2NzgifQ.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        &["eyJzdWIiOiI3NzAwMTIzNDU2NzgifQ", "dozjgNryP4J3jVmNHl0w5N"],
    ),
    ("IPv4 address", "10.23.45.67", &["10.23.45.67"]),
    ("IPv6 address", "2001:db8:85a3::8a2e:370:7334", &["2001:db8:85a3"]),
];

/// Placeholders the scan must find where the rows are: proof that it sees into those files.
const PLACEHOLDERS: [&str; 8] = ["[name]", "[address]", "[phone]", "[email]", "[id]", "[card]", "[token]", "[ip]"];

fn encoded(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Three beacons per category: an event (name, prop key and value), an error report (message,
/// source, stack), and a pageview (path, kept query, `utm_term`, fragment, referrer).
fn beacons(text: &str) -> [String; 3] {
    let e = encoded(text);
    let json = |v: serde_json::Value| v.to_string();
    [
        json(serde_json::json!({
            "site": "lk", "type": "event", "url": "https://lk.example.ru/profile",
            "name": format!("Профиль: {text}"), "props": {"value": text, text: "1"},
        })),
        json(serde_json::json!({
            "site": "lk", "type": "error", "url": "https://lk.example.ru/pay",
            "err": {
                "msg": format!("Ошибка для {text}"),
                "src": format!("https://lk.example.ru/app.js?u={e}"),
                "stack": format!("Error: {text}\n    at save (https://lk.example.ru/app.js:1:2)"),
            },
        })),
        json(serde_json::json!({
            "site": "lk", "url": format!("https://lk.example.ru/search/{e}?tab={e}&utm_term={e}#{e}"),
            "ref": format!("https://example.com/r/{e}"),
        })),
    ]
}

fn send_all(c: &Collector) -> usize {
    let mut sent = 0;
    for (what, text, _) in PERSONAL {
        for body in beacons(text) {
            let reply = c.beacon(&body, &[("user-agent", UA), ("x-forwarded-for", "203.0.113.77")]);
            assert_eq!(reply.status, 202, "{what}: {}", reply.text());
            sent += 1;
        }
    }
    sent
}

/// Every part of every category, as text and percent-encoded.
fn needles() -> Vec<scan::Needle> {
    PERSONAL
        .iter()
        .flat_map(|(what, _, parts)| {
            parts.iter().flat_map(move |p| {
                [scan::text_needle(what, p), scan::text_needle(&format!("{what}, percent-encoded"), &encoded(p))]
            })
        })
        .filter(|n| n.bytes.len() >= 6)
        .collect()
}

fn controls() -> Vec<scan::Needle> {
    PLACEHOLDERS.iter().map(|p| scan::text_needle("placeholder", p)).collect()
}

/// Scans `files`: no needle anywhere, and every placeholder somewhere.
fn assert_clean(place: &str, files: &[std::path::PathBuf]) {
    let hits = scan::find(files, &needles());
    assert!(hits.is_empty(), "personal data in {place}: {hits:#?}");
    let found: Vec<String> = scan::find(files, &controls()).into_iter().map(|(what, _)| what).collect();
    for placeholder in PLACEHOLDERS {
        assert!(
            found.iter().any(|f| f.contains(placeholder)),
            "{placeholder} not found in {place} ({} files): the scan would prove nothing",
            files.len()
        );
    }
    eprintln!("[personal_data] {place}: {} files, {} needles, none found", files.len(), needles().len());
}

fn spool_rows(c: &Collector, outcome: &str, table: &str) -> f64 {
    c.metric_sum("webstats_collector_spool_rows_total", &[("outcome", outcome), ("table", table)])
}

#[test]
fn personal_data_reaches_no_file() {
    let install = Install::new("personaldata");
    let c = install.collector(
        "[sink]\nflush_interval_ms = 100\nretry_initial_backoff_ms = 100\nretry_max_backoff_ms = 400\n\
         [[sites]]\nid = \"lk\"\nallowed_hosts = [\"lk.example.ru\"]\nquery_allowlist = [\"tab\"]\n",
    );
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");

    // Audience batches refused for their data: dead letters. Troubleshooting inserts fail
    // while the table is away: the spool.
    install.refuse_ingest("audience");
    install.hide_ingest("troubleshooting");

    let sent = send_all(&c);
    let (audience_rows, troubleshooting_rows) = (2.0 * PERSONAL.len() as f64, sent as f64);
    c.wait_until_for(
        Duration::from_secs(60),
        |c| {
            c.metric_sum("webstats_collector_dead_letter_rows_total", &[("table", "audience")]) >= audience_rows
                && spool_rows(c, "written", "troubleshooting") >= troubleshooting_rows
        },
        "audience rows in dead-letter/ and troubleshooting rows in the spool",
    );
    let dead_letter = scan::files_under(&c.spool_dir.join("dead-letter"));
    let spool: Vec<_> = scan::files_under(&c.spool_dir).into_iter().filter(|f| !dead_letter.contains(f)).collect();
    assert_clean("dead-letter/", &dead_letter);
    assert_clean("the spool", &spool);

    // Both tables back: the spool replays, and the beacons are sent again into both stores.
    for table in ["audience", "troubleshooting"] {
        install.restore_ingest(table);
    }
    c.wait_until_for(
        Duration::from_secs(60),
        |c| spool_rows(c, "replayed", "troubleshooting") >= troubleshooting_rows,
        "the spool replayed",
    );
    send_all(&c);
    install.wait_for_count(&format!("SELECT count() FROM {}", install.audience()), audience_rows as u64);
    install.wait_for_count(&format!("SELECT count() FROM {}", install.troubleshooting()), 2 * sent as u64);

    // ClickHouse's files, once its buffers are on disk; then the logs.
    for store in [install.audience(), install.troubleshooting()] {
        install.sql(&format!("OPTIMIZE TABLE {store} FINAL"));
    }
    let own: Vec<_> = scan::files_under(&e2e::clickhouse_dir())
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(&install.prefix))
        .collect();
    assert_clean("this installation's ClickHouse files", &own);
    let log = c.log.clone();
    let status = c.stop();
    assert!(status.success(), "collector exit: {status:?}");
    let mut logs = scan::files_under(&e2e::clickhouse_dir().join("log"));
    logs.push(log);
    let hits = scan::find(&logs, &needles());
    assert!(hits.is_empty(), "personal data in the logs: {hits:#?}");
    eprintln!("[personal_data] {} log files, none holds personal data", logs.len());
}
