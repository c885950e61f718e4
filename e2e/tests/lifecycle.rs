//! Data lifecycle against the real server: retention drops whole expired partitions and
//! audits them; an expired salt leaves a running collector, ClickHouse and the disk, after
//! which its visitor ids cannot be reproduced.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::{Install, cluster::Cluster, scan};
use store::pseudonym::SaltKeys;

fn now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32
}

#[test]
fn retention_drops_exactly_the_expired_partitions_and_audits_them() {
    retention(&Install::new("retention"));
}

#[test]
fn an_expired_salt_leaves_the_collector_clickhouse_and_the_disk() {
    salt_expiry(&Install::new("saltexpiry"));
}

/// Both on 2 shards x 2 replicas (docs/operations.md, Running a cluster): retention drops the
/// partitions of every shard on each shard's leader, and the expired salt leaves every node's
/// disk.
#[test]
fn retention_and_salt_expiry_reach_every_node_of_a_cluster() {
    let cluster = Cluster::start("lifecycle", 2, 2);
    retention(&Install::on_cluster(&cluster, "clretention"));
    salt_expiry(&Install::on_cluster(&cluster, "clsaltexpiry"));
}

/// Rows back-dated over five days in both stores; a pass with one day of retention drops the
/// expired partitions, audited, and a second pass drops nothing.
fn retention(install: &Install) {
    install.configure_aggregator("[retention]\naudience_days = 1\ntroubleshooting_days = 1\n");
    let today = now() / 86_400;
    // Back-dated rows: 3 per day for 5 and 3 days ago (expired), yesterday and today (kept).
    for (days_ago, n) in [(5u32, 3u32), (3, 3), (1, 3), (0, 3)] {
        let day = today - days_ago;
        for table in [install.audience(), install.troubleshooting()] {
            install.sql(&format!(
                "INSERT INTO {table} (date, ts, site) SELECT toDate({day}), toDateTime({ts}), 's' FROM system.numbers LIMIT {n}",
                ts = day * 86_400 + 3_600
            ));
        }
    }
    install.sync_replicas();
    let out = install.aggregator(&["run", "--once"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    install.sync_replicas();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("partitions dropped: 4"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    for table in [install.audience(), install.troubleshooting()] {
        let days: Vec<u64> = install
            .sql(&format!("SELECT DISTINCT toUInt32(date) AS day FROM {table} ORDER BY day FORMAT TSV"))
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(days, vec![u64::from(today - 1), u64::from(today)], "{table} keeps yesterday and today only");
        assert_eq!(install.sql_u64(&format!("SELECT count() FROM {table}")), 6);
    }
    let audit = install.sql_rows(&format!(
        "SELECT action, target, rows FROM {}_admin.audit WHERE action = 'retention_drop' ORDER BY target",
        install.prefix
    ));
    assert_eq!(audit.len(), 4, "{audit:?}");
    assert!(audit.iter().all(|r| r["rows"] == "3" || r["rows"] == 3), "{audit:?}");

    // A second pass finds nothing more to drop.
    let again = install.aggregator(&["retention"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("partitions dropped: 0"));
}

/// A salt about to expire: the collector forgets it, the aggregator deletes it (audited), no
/// stored visitor id can be reproduced, and its bytes are on no server's disk.
fn salt_expiry(install: &Install) {
    install.configure_aggregator("[salts]\ngrace_period_s = 0\n");
    let salts = format!("{}_meta.salts", install.prefix);
    install.truncate(&salts);
    // A salt whose period started yesterday and ends in a few seconds.
    let secret: [u8; 32] = *b"expiring-salt-0123456789abcdefgh";
    let (start, end) = (now() - 86_400, now() + 4);
    let hex: String = secret.iter().map(|b| format!("{b:02X}")).collect();
    install.sql(&format!("INSERT INTO {salts} VALUES (toDateTime({start}), toDateTime({end}), unhex('{hex}'), now())"));

    let site = "[[sites]]\nid = \"s\"\nallowed_hosts = [\"a.example.ru\"]\n";
    let c = install.collector(site);
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
    assert_eq!(c.metric("webstats_collector_salt_oldest_period_start_seconds"), f64::from(start));

    let (ip, ua) = ("198.51.100.77", "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0");
    let reply =
        c.beacon(r#"{"site":"s","url":"https://a.example.ru/"}"#, &[("x-forwarded-for", ip), ("user-agent", ua)]);
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(install.wait_for_count(&format!("SELECT count() FROM {}", install.audience()), 1), 1);
    // On a cluster the next read may go to the shard's other replica.
    install.sync_replicas();
    let stored = install.sql_u64(&format!("SELECT visitor_id FROM {}", install.audience()));
    assert_eq!(stored, SaltKeys::derive(&secret).visitor_id("s", ip.parse().unwrap(), ua));

    // The aggregator creates today's and tomorrow's salts; once the old period has ended, the
    // collector forgets it at its next refresh.
    assert!(install.aggregator(&["salts"]).status.success());
    std::thread::sleep(Duration::from_secs(u64::from(end.saturating_sub(now())) + 1));
    let today = now() / 86_400 * 86_400;
    c.wait_until(
        |c| c.metric("webstats_collector_salt_oldest_period_start_seconds") == f64::from(today),
        "the collector to forget the ended period",
    );
    assert_eq!(c.metric("webstats_collector_salt_periods_loaded"), 2.0);

    // Past the grace period the aggregator deletes it from ClickHouse, audited.
    let out = install.aggregator(&["run", "--once"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    install.sync_replicas();
    assert_eq!(install.sql_u64(&format!("SELECT count() FROM {salts} WHERE toUInt32(period_start) = {start}")), 0);
    assert_eq!(
        install.sql_u64(&format!(
            "SELECT count() FROM {}_admin.audit WHERE action = 'salt_delete' AND target LIKE '%{start}..{end}'",
            install.prefix
        )),
        1
    );

    // The stored visitor id can no longer be reproduced with any salt that exists.
    let remaining: Vec<String> =
        install.sql(&format!("SELECT hex(salt) FROM {salts} FORMAT TSV")).lines().map(str::to_owned).collect();
    assert_eq!(remaining.len(), 2);
    for hex in remaining {
        let bytes: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
        let keys = SaltKeys::derive(&bytes.try_into().unwrap());
        assert_ne!(keys.visitor_id("s", ip.parse().unwrap(), ua), stored);
    }
    // ...and the salt's bytes are on no file of any server (on one server DROP PARTITION
    // removes the part at once; a replica removes it when it has replayed the drop, within
    // old_parts_lifetime).
    let dirs: Vec<_> = install.nodes().iter().map(|n| n.dir().to_owned()).collect();
    let needle = [scan::Needle { what: "expired salt".into(), bytes: secret.to_vec() }];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let files: Vec<_> = dirs.iter().flat_map(|d| scan::files_under(d)).collect();
        let hits = scan::find(&files, &needle);
        if hits.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{hits:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
}
