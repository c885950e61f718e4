//! Data-subject requests end to end: block (collectors drop the person's beacons within a
//! refresh), export (JSON of every stored row), erase (gone from every store), unblock; each
//! audited under the pseudonym, never the raw value. An erase or a block also reaches the rows
//! waiting in a collector's spool or dead letters: they are left out when replayed.

use std::time::Duration;

use e2e::{Collector, Install, cluster::Cluster, scan, sql_u64, wait_for_count};
use store::pseudonym::CookieKey;

const KEY: &str = "subject-test-cookie-key-0123456789abcdef";
const ALICE: &str = "alice-7f3a9c21-cookie";
const BOB: &str = "bob-0b44e6d2-cookie";
const CAROL: &str = "carol-5d19e0aa-cookie";
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
    requests(&Install::new("subject"));
}

/// The same on 2 shards x 2 replicas (docs/operations.md, Running a cluster): the erase
/// reaches both replicas of the person's shard.
#[test]
fn the_requests_of_a_person_reach_every_node_of_a_cluster() {
    let cluster = Cluster::start("subject", 2, 2);
    requests(&Install::on_cluster(&cluster, "clsubject"));
}

/// Export, block, erase and unblock of one person, each audited, with nothing raw on disk.
fn requests(install: &Install) {
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
    let count = |table: &str, id: u64| install.sql_u64(&format!("SELECT count() FROM {table} WHERE cookie_id = {id}"));

    for path in ["/", "/pay", "/accounts/1234567/bills"] {
        assert_eq!(send(&c, ALICE, path), 202);
    }
    assert_eq!(send(&c, BOB, "/"), 202);
    assert_eq!(install.wait_for_count(&format!("SELECT count() FROM {audience}"), 4), 4);
    install.wait_for_count(&format!("SELECT count() FROM {trouble}"), 4);
    install.sync_replicas();
    assert_eq!(count(&audience, alice), 3);

    // Export: every stored row, both stores, as JSON; never the raw cookie value.
    let export: serde_json::Value =
        serde_json::from_str(&subject(install, &["export", "--site", "lk", "--cookie", ALICE])).unwrap();
    assert_eq!(export["stores"]["audience"].as_array().unwrap().len(), 3);
    assert_eq!(export["stores"]["troubleshooting"].as_array().unwrap().len(), 3);
    assert_eq!(export["stores"]["audience"][0]["cookie_id"], alice.to_string());
    assert!(!export.to_string().contains(ALICE));

    // Block: from the collector's next refresh on, Alice's beacons are dropped and counted.
    assert!(subject(install, &["block", "--site", "lk", "--cookie", ALICE]).contains("blocked 1"));
    c.wait_until(|c| c.metric("webstats_collector_blocklist_entries") == 1.0, "the collector to load the block");
    assert_eq!(send(&c, ALICE, "/after-block"), 202, "a blocked beacon is answered like any other");
    assert_eq!(c.metric_sum("webstats_collector_beacons_dropped_total", &[("reason", "blocked")]), 1.0);
    assert_eq!(send(&c, BOB, "/bob-still-counted"), 202);
    assert_eq!(
        install.wait_for_count(&format!("SELECT count() FROM {audience} WHERE path = '/bob-still-counted'"), 1),
        1
    );
    install.sync_replicas();
    assert_eq!(
        install.sql_u64(&format!("SELECT count() FROM {audience} WHERE path = '/after-block'")),
        0,
        "dropped, never stored"
    );

    // Erase: nothing of Alice's is left in either store; Bob's rows stay.
    assert!(subject(install, &["erase", "--site", "lk", "--cookie", ALICE]).contains("erased 6 row(s)"));
    assert_eq!((count(&audience, alice), count(&trouble, alice)), (0, 0));
    assert_eq!(install.sql_u64(&format!("SELECT count() FROM {audience} WHERE cookie_id != 0")), 2);

    // Unblock: Alice's beacons are stored again.
    subject(install, &["unblock", "--site", "lk", "--cookie", ALICE]);
    c.wait_until(|c| c.metric("webstats_collector_blocklist_entries") == 0.0, "the collector to load the unblock");
    assert_eq!(send(&c, ALICE, "/after-unblock"), 202);
    assert_eq!(install.wait_for_count(&format!("SELECT count() FROM {audience} WHERE path = '/after-unblock'"), 1), 1);

    // Every request is audited under the pseudonym; no raw value is anywhere in the audit.
    let audit = install.sql(&format!(
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
    let everything = install.sql(&format!("SELECT * FROM {}_admin.audit FORMAT TSV", install.prefix));
    assert!(!everything.contains("alice"));

    // The raw cookie values and the address are in no file of the server (the audit and
    // blocklist tables included) and not in the collector's log.
    let mut files: Vec<_> = install.nodes().iter().flat_map(|n| scan::files_under(n.dir())).collect();
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
    // Each table's rows are an insert of their own: wait for both.
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {}", install.audience()), 3), 3);
    assert_eq!(wait_for_count(&format!("SELECT count() FROM {}", install.troubleshooting()), 3), 3);
    let export: serde_json::Value =
        serde_json::from_str(&subject(&install, &["export", "--site", "lk", "--ip", "203.0.113.7", "--ua", UA]))
            .unwrap();
    assert_eq!(export["stores"]["audience"].as_array().unwrap().len(), 2);
    assert!(
        subject(&install, &["erase", "--site", "lk", "--ip", "203.0.113.7", "--ua", UA]).contains("erased 4 row(s)")
    );
    assert_eq!(sql_u64(&format!("SELECT count() FROM {}", install.audience())), 1);
}

// ---------------------------------------------------------------------------------------------
// Rows waiting in the spool or the dead letters while a request is made.

/// A cookie-mode collector on `install` that retries the spool quickly.
fn spooling_collector(install: &Install) -> Collector {
    install.configure_aggregator("[privacy]\ncookie_key_env = \"TEST_COOKIE_KEY\"\n");
    let c = install.collector_with(
        "[sink]\nflush_interval_ms = 100\nretry_initial_backoff_ms = 100\nretry_max_backoff_ms = 400\n\
         [privacy]\ncookie_key_env = \"TEST_COOKIE_KEY\"\n\
         [[sites]]\nid = \"lk\"\nallowed_hosts = [\"lk.example.ru\"]\ncookie_mode = true\n",
        &[("TEST_COOKIE_KEY", KEY)],
    );
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
    c
}

fn cookie_id(cookie: &str) -> u64 {
    CookieKey::from_material(KEY.as_bytes()).unwrap().cookie_id("lk", cookie)
}

/// Rows of `cookie` in `table`.
fn rows_of(install: &Install, table: &str, cookie: &str) -> u64 {
    install.sql_u64(&format!("SELECT count() FROM {table} WHERE cookie_id = {}", cookie_id(cookie)))
}

/// `webstats_collector_spool_rows_total` of an outcome, all tables or one.
fn spool_rows(c: &Collector, outcome: &str, table: Option<&str>) -> f64 {
    let mut labels = vec![("outcome", outcome)];
    labels.extend(table.map(|t| ("table", t)));
    c.metric_sum("webstats_collector_spool_rows_total", &labels)
}

/// Waits until the spool is empty and `rows` spooled rows were replayed or left out.
fn wait_replayed(c: &Collector, rows: f64) {
    c.wait_until_for(
        Duration::from_secs(60),
        |c| {
            let done = ["replayed", "erased", "blocked"].iter().map(|o| spool_rows(c, o, None)).sum::<f64>();
            done >= rows && c.metric_sum("webstats_collector_spool_segments", &[]) == 0.0
        },
        &format!("{rows} spooled rows replayed or left out, and an empty spool"),
    );
}

/// Alice's and Bob's beacons wait in the spool while the ingest tables are away (inserts fail
/// with "table doesn't exist", a transient error; ClickHouse stays up). Alice is erased; then
/// the tables come back and the spool is replayed: all of Bob's rows arrive and none of
/// Alice's, which are counted as `erased`.
#[test]
fn an_erase_reaches_rows_waiting_in_the_spool() {
    let install = Install::new("subjectspool");
    let c = spooling_collector(&install);
    let (audience, trouble) = (install.audience(), install.troubleshooting());
    for table in ["audience", "troubleshooting"] {
        install.hide_ingest(table);
    }

    for path in ["/", "/pay", "/accounts/1234567/bills"] {
        assert_eq!(send(&c, ALICE, path), 202);
    }
    for path in ["/", "/help"] {
        assert_eq!(send(&c, BOB, path), 202);
    }
    // Five beacons, a row in each table: all spooled, none stored.
    c.wait_until(|c| spool_rows(c, "written", None) >= 10.0, "the 10 rows of 5 beacons in the spool");
    assert_eq!(spool_rows(&c, "written", None), 10.0);
    assert!(c.metric_sum("webstats_collector_sink_inserts_total", &[("outcome", "transient_error")]) > 0.0);
    assert_eq!((install.count(&audience), install.count(&trouble)), (0, 0));

    // Nothing of Alice's is stored yet; the erasure is recorded all the same.
    assert!(subject(&install, &["erase", "--site", "lk", "--cookie", ALICE]).contains("erased 0 row(s)"));
    // A replay attempt that read the erasures just before the request and inserts once the
    // tables are back is not filtered (docs/privacy-model.md section 6, Limits): each table's
    // replay fails twice more first, so that the attempt under way has read them afterwards.
    let failed = |c: &Collector, table| {
        c.metric_sum("webstats_collector_sink_inserts_total", &[("table", table), ("outcome", "transient_error")])
    };
    let before = [failed(&c, "audience"), failed(&c, "troubleshooting")];
    c.wait_until(
        |c| failed(c, "audience") >= before[0] + 2.0 && failed(c, "troubleshooting") >= before[1] + 2.0,
        "two more failed replays of each table after the erase",
    );
    for table in ["audience", "troubleshooting"] {
        install.restore_ingest(table);
    }
    wait_replayed(&c, 10.0);

    assert_eq!((rows_of(&install, &audience, BOB), rows_of(&install, &trouble, BOB)), (2, 2));
    assert_eq!((rows_of(&install, &audience, ALICE), rows_of(&install, &trouble, ALICE)), (0, 0));
    assert_eq!((install.count(&audience), install.count(&trouble)), (2, 2), "nothing else arrived");
    for table in ["audience", "troubleshooting"] {
        assert_eq!(spool_rows(&c, "erased", Some(table)), 3.0, "{table}");
        assert_eq!(spool_rows(&c, "replayed", Some(table)), 2.0, "{table}");
        assert_eq!(spool_rows(&c, "blocked", Some(table)), 0.0, "{table}");
    }
    // Logged with counts only, never a pseudonym or the cookie value.
    let log = c.log_text();
    assert!(log.contains("left out of a spool replay"), "no log line about the rows left out");
    for needle in [cookie_id(ALICE).to_string(), ALICE.to_owned()] {
        assert!(!log.contains(&needle), "the collector log holds {needle}");
    }
}

/// The audience ingest table refuses every batch for its data, so Alice's, Bob's and Carol's
/// audience rows become dead letters (their troubleshooting rows are stored). Alice is erased
/// and Carol blocked; after the fix the operator moves the dead letters back into the spool
/// and restarts the collector: Bob's rows arrive, Alice's and Carol's do not.
#[test]
fn an_erase_or_a_block_reaches_dead_letters_moved_back_into_the_spool() {
    let install = Install::new("subjectdead");
    let mut c = spooling_collector(&install);
    let (audience, trouble) = (install.audience(), install.troubleshooting());

    // Every audience batch refused for its data (code 33).
    install.refuse_ingest("audience");

    for (cookie, beacons) in [(ALICE, 3), (BOB, 2), (CAROL, 2)] {
        for i in 0..beacons {
            assert_eq!(send(&c, cookie, &format!("/page-{i}")), 202);
        }
    }
    let dead_rows = |c: &Collector| c.metric_sum("webstats_collector_dead_letter_rows_total", &[("table", "audience")]);
    c.wait_until(|c| dead_rows(c) >= 7.0, "the 7 audience rows in the dead letters");
    assert_eq!(install.wait_for_count(&format!("SELECT count() FROM {trouble}"), 7), 7);
    assert_eq!(install.count(&audience), 0);

    assert!(subject(&install, &["erase", "--site", "lk", "--cookie", ALICE]).contains("erased 3 row(s)"));
    assert!(subject(&install, &["block", "--site", "lk", "--cookie", CAROL]).contains("blocked 1"));

    // The fix, then the documented replay: the .seg files back into the spool, a restart.
    install.restore_ingest("audience");
    assert!(c.terminate().success());
    let dead_letter = c.spool_dir.join("dead-letter");
    let mut moved = 0;
    for entry in std::fs::read_dir(&dead_letter).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "seg") {
            std::fs::rename(&path, c.spool_dir.join(path.file_name().unwrap())).unwrap();
            moved += 1;
        }
    }
    assert!(moved > 0, "no dead-letter segment in {}", dead_letter.display());
    c.restart();
    wait_replayed(&c, 7.0);

    assert_eq!(rows_of(&install, &audience, BOB), 2);
    assert_eq!((rows_of(&install, &audience, ALICE), rows_of(&install, &trouble, ALICE)), (0, 0));
    assert_eq!(rows_of(&install, &audience, CAROL), 0);
    assert_eq!(rows_of(&install, &trouble, CAROL), 2, "a block deletes nothing already stored");
    assert_eq!(install.count(&audience), 2, "nothing else arrived");
    // Counted by this run of the collector: the replay after the restart.
    assert_eq!(spool_rows(&c, "erased", Some("audience")), 3.0);
    assert_eq!(spool_rows(&c, "blocked", Some("audience")), 2.0);
    assert_eq!(spool_rows(&c, "replayed", Some("audience")), 2.0);
}
