//! Data-subject requests end to end: block (collectors drop the person's beacons within a
//! refresh), export (JSON of every stored row), erase (gone from every store), unblock; each
//! audited under the pseudonym, never the raw value.

use e2e::{Collector, Install, scan, sql, sql_u64, wait_for_count};
use store::pseudonym::CookieKey;

const KEY: &str = "subject-test-cookie-key-0123456789abcdef";
const ALICE: &str = "alice-7f3a9c21-cookie";
const BOB: &str = "bob-0b44e6d2-cookie";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

fn send(c: &Collector, cookie: &str, path: &str) -> u16 {
    let body = format!(r#"{{"site":"lk","url":"https://lk.example.ru{path}","sid":"{cookie}"}}"#);
    c.beacon(&body, &[("user-agent", UA), ("x-forwarded-for", "203.0.113.50")]).status
}

fn subject(install: &Install, args: &[&str]) -> String {
    let mut all = vec!["subject"];
    all.extend_from_slice(args);
    let out = install.aggregator_with_env(&all, &[("TEST_COOKIE_KEY", KEY)]);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn block_export_erase_and_unblock_a_person() {
    let install = Install::new("subject");
    install.configure_aggregator("[privacy]\ncookie_key_env = \"TEST_COOKIE_KEY\"\n");
    let c = install.collector_with(
        "[sink]\nflush_interval_ms = 200\n\
         [privacy]\ncookie_key_env = \"TEST_COOKIE_KEY\"\n\
         [[sites]]\nid = \"lk\"\nallowed_hosts = [\"lk.example.ru\"]\ncookie_mode = true\n",
        &[("TEST_COOKIE_KEY", KEY)],
    );
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
    let alice = CookieKey::from_material(KEY.as_bytes()).unwrap().cookie_id("lk", ALICE);
    let (audience, trouble) = (install.audience(), install.troubleshooting());
    let count = |table: &str, id: u64| sql_u64(&format!("SELECT count() FROM {table} WHERE cookie_id = {id}"));

    for path in ["/", "/pay", "/accounts/1234567/bills"] {
        assert_eq!(send(&c, ALICE, path), 202);
    }
    assert_eq!(send(&c, BOB, "/"), 202);
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {audience}"), 4), 4);
    assert_eq!(count(&audience, alice), 3);

    // Export: every stored row, both stores, as JSON; never the raw cookie value.
    let export: serde_json::Value =
        serde_json::from_str(&subject(&install, &["export", "--site", "lk", "--cookie", ALICE])).unwrap();
    assert_eq!(export["stores"]["audience"].as_array().unwrap().len(), 3);
    assert_eq!(export["stores"]["troubleshooting"].as_array().unwrap().len(), 3);
    assert_eq!(export["stores"]["audience"][0]["cookie_id"], alice.to_string());
    assert!(!export.to_string().contains(ALICE));

    // Block: from the collector's next refresh on, Alice's beacons are dropped and counted.
    assert!(subject(&install, &["block", "--site", "lk", "--cookie", ALICE]).contains("blocked 1"));
    c.wait_until(|c| c.metric("webstats_collector_blocklist_entries") == 1.0, "the collector to load the block");
    assert_eq!(send(&c, ALICE, "/after-block"), 202, "a blocked beacon is answered like any other");
    assert_eq!(c.metric_sum("webstats_collector_beacons_dropped_total", &[("reason", "blocked")]), 1.0);
    assert_eq!(send(&c, BOB, "/bob-still-counted"), 202);
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {audience} WHERE path = '/bob-still-counted'"), 1), 1);
    assert_eq!(
        sql_u64(&format!("SELECT count() FROM {audience} WHERE path = '/after-block'")),
        0,
        "dropped, never stored"
    );

    // Erase: nothing of Alice's is left in either store; Bob's rows stay.
    assert!(subject(&install, &["erase", "--site", "lk", "--cookie", ALICE]).contains("erased 6 row(s)"));
    assert_eq!((count(&audience, alice), count(&trouble, alice)), (0, 0));
    assert_eq!(sql_u64(&format!("SELECT count() FROM {audience} WHERE cookie_id != 0")), 2);

    // Unblock: Alice's beacons are stored again.
    subject(&install, &["unblock", "--site", "lk", "--cookie", ALICE]);
    c.wait_until(|c| c.metric("webstats_collector_blocklist_entries") == 0.0, "the collector to load the unblock");
    assert_eq!(send(&c, ALICE, "/after-unblock"), 202);
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {audience} WHERE path = '/after-unblock'"), 1), 1);

    // Every request is audited under the pseudonym; no raw value is anywhere in the audit.
    let audit = sql(&format!(
        "SELECT action, target, subject_kind, subject_id, rows FROM {p}_admin.audit ORDER BY action, target FORMAT TSV",
        p = install.prefix
    ));
    let (a, t) = (&audience, &trouble);
    let expected = format!(
        "subject_block\t\tcookie\t{alice}\t0\n\
         subject_erase\t{a}\tcookie\t{alice}\t3\n\
         subject_erase\t{t}\tcookie\t{alice}\t3\n\
         subject_export\t\tcookie\t{alice}\t6\n\
         subject_unblock\t\tcookie\t{alice}\t0\n"
    );
    assert_eq!(audit, expected, "one audit row per request, and per table erased");
    let everything = sql(&format!("SELECT * FROM {}_admin.audit FORMAT TSV", install.prefix));
    assert!(!everything.contains("alice"));

    // The raw cookie values and the address are in no file of the server (the audit and
    // blocklist tables included) and not in the collector's log.
    let mut files = scan::files_under(&e2e::clickhouse_dir());
    files.push(c.log.clone());
    let mut needles = vec![scan::text_needle("cookie", ALICE), scan::text_needle("cookie", BOB)];
    needles.extend(scan::ip_needles("203.0.113.50".parse().unwrap()).into_iter().filter(|n| n.bytes.len() != 4));
    let audit_files: Vec<_> =
        files.iter().filter(|f| f.to_string_lossy().contains(&format!("{}_admin", install.prefix))).collect();
    assert!(!audit_files.is_empty(), "the scan covers the audit table's files");
    let hits = scan::find(&files, &needles);
    assert!(hits.is_empty(), "raw identifiers found: {hits:#?}");
}

#[test]
fn a_person_named_by_ip_and_user_agent_is_found_within_the_salts_life() {
    let install = Install::new("subjectip");
    let c = install.collector("[[sites]]\nid = \"lk\"\nallowed_hosts = [\"lk.example.ru\"]\n");
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
    for ip in ["203.0.113.7", "203.0.113.7", "198.51.100.8"] {
        let reply =
            c.beacon(r#"{"site":"lk","url":"https://lk.example.ru/"}"#, &[("user-agent", UA), ("x-forwarded-for", ip)]);
        assert_eq!(reply.status, 202);
    }
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {}", install.audience()), 3), 3);
    let export: serde_json::Value =
        serde_json::from_str(&subject(&install, &["export", "--site", "lk", "--ip", "203.0.113.7", "--ua", UA]))
            .unwrap();
    assert_eq!(export["stores"]["audience"].as_array().unwrap().len(), 2);
    assert!(
        subject(&install, &["erase", "--site", "lk", "--ip", "203.0.113.7", "--ua", UA]).contains("erased 4 row(s)")
    );
    assert_eq!(sql_u64(&format!("SELECT count() FROM {}", install.audience())), 1);
}
