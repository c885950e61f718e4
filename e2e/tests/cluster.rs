//! An installation on a ClickHouse cluster (docs/operations.md, "Running a cluster"): Debian's
//! ZooKeeper and 2 shards x 2 replicas of ClickHouse 18.16 on loopback, started by
//! scripts/cluster.sh. `aggregator migrate` with `[clickhouse] cluster` creates every table ON
//! CLUSTER; rows inserted through the Distributed ingest table land on the shard of their
//! visitor, on both of its replicas, and a replayed block is stored once.
//!
//! Then the failures of docs/operations.md's table, each under a steady load through a real
//! collector: a replica SIGKILLed and restarted, a whole shard stopped for 15 s, ZooKeeper
//! stopped for 10 s. Every beacon answered 202 must be in both stores exactly once at the end
//! (the spool takes the batches ClickHouse refuses; a replayed batch's blocks that a shard had
//! already stored are dropped by the replicated tables' block deduplication).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use e2e::{
    Install, binary,
    cluster::Cluster,
    http,
    load::{Arrival, Load, SITE, assert_all_arrive, secs, wait_arrival, wait_ready},
    unique_prefix,
};
use serde_json::json;

const VISITORS: u64 = 200;

#[test]
fn a_two_by_two_cluster_takes_the_migrations_and_keeps_each_visitor_on_one_shard() {
    let cluster = Cluster::start("migrate", 2, 2);
    let prefix = unique_prefix("cluster");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aggregator.toml");
    let first = &cluster.nodes[0].server;
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| format!("\"{}\"", n.server.url())).collect();
    std::fs::write(
        &config,
        format!(
            "[clickhouse]\nurl = \"{}\"\nuser = \"admin\"\npassword_env = \"WEBSTATS_CH_PASSWORD_ADMIN\"\n\
             database_prefix = \"{prefix}\"\ncluster = \"{}\"\n[cluster]\nnodes = [{}]\n",
            first.url(),
            cluster.name,
            nodes.join(", ")
        ),
    )
    .unwrap();
    let migrate = || {
        let out = Command::new(binary("aggregator"))
            .args(["--config", config.to_str().unwrap(), "migrate"])
            .env("WEBSTATS_CH_PASSWORD_ADMIN", cluster.admin_password())
            .output()
            .unwrap();
        assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let versions: Vec<u32> = store::MIGRATIONS.iter().map(|m| m.version).collect();
    assert!(migrate().contains(&format!("applied: {versions:?}")));
    assert!(migrate().contains(&format!("applied: []; already applied: {versions:?}")), "idempotent on a cluster");

    // Every node has every table: the stores sharded and replicated, the rest replicated.
    let engine = |node: &e2e::cluster::Node, table: &str| {
        let (database, name) = table.split_once('.').unwrap();
        node.server.sql(&format!("SELECT engine FROM system.tables WHERE database = '{database}' AND name = '{name}'"))
    };
    for node in &cluster.nodes {
        for (table, expected) in [
            ("audience.events_local", "ReplicatedMergeTree"),
            ("audience.events", "Distributed"),
            ("troubleshooting.events_local", "ReplicatedMergeTree"),
            ("ingest.audience", "Distributed"),
            ("ingest.audience_local", "Null"),
            ("stage.audience", "Buffer"),
            ("meta.salts", "ReplicatedMergeTree"),
            ("meta.blocklist", "ReplicatedReplacingMergeTree"),
            ("rollups.daily_totals", "ReplicatedMergeTree"),
        ] {
            assert_eq!(engine(node, &format!("{prefix}_{table}")).trim(), expected, "{} {table}", node.name);
        }
        assert_eq!(node.server.sql_u64(&format!("SELECT count() FROM {prefix}_meta.salts")), 2, "{}", node.name);
    }

    // VISITORS visitors with two pageviews each, through the Distributed ingest table, as the
    // collector inserts (insert_distributed_sync: answered once every shard has its rows).
    let rows: String = (1..=VISITORS)
        .flat_map(|v| {
            [1, 2].map(move |n| {
                json!({"date": "2026-11-27", "ts": 1_795_000_000 + n, "site": "lk", "type": "pageview",
                       "visitor_id": v.wrapping_mul(0x9E37_79B9_7F4A_7C15), "path": format!("/p{n}")})
                .to_string()
                    + "\n"
            })
        })
        .collect();
    let insert = || {
        let query = format!(
            "INSERT INTO {prefix}_ingest.audience (date, ts, site, type, visitor_id, path) FORMAT JSONEachRow\n{rows}"
        );
        let mut response = http()
            .post(&format!("{}/?insert_distributed_sync=1", first.url()))
            .header("X-ClickHouse-User", "admin")
            .header("X-ClickHouse-Key", cluster.admin_password())
            .send(query)
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.body_mut().read_to_string().unwrap());
    };
    insert();
    // The other replica of each shard fetches the part asynchronously: wait for it.
    let sync = || {
        for node in &cluster.nodes {
            node.server.sql(&format!("SYSTEM SYNC REPLICA {prefix}_audience.events_local"));
        }
    };
    sync();
    let all = format!("SELECT count() FROM {prefix}_audience.events");
    for node in &cluster.nodes {
        assert_eq!(node.server.sql_u64(&all), 2 * VISITORS, "{} reads every shard", node.name);
    }
    // Each shard holds some visitors, whole; both replicas of a shard hold the same rows.
    let local = format!("SELECT count(), uniqExact(visitor_id) FROM {prefix}_audience.events_local FORMAT TSV");
    let mut per_shard = Vec::new();
    for shard in [1, 2] {
        let counts: Vec<String> = cluster.shard(shard).map(|n| n.server.sql(&local).trim().to_owned()).collect();
        assert!(counts.windows(2).all(|w| w[0] == w[1]), "replicas of shard {shard} differ: {counts:?}");
        let (rows, visitors) = counts[0].trim().split_once('\t').unwrap();
        let (rows, visitors): (u64, u64) = (rows.parse().unwrap(), visitors.parse().unwrap());
        assert_eq!(rows, 2 * visitors, "shard {shard}: a visitor's rows are all on one shard");
        per_shard.push(visitors);
    }
    assert_eq!(per_shard.iter().sum::<u64>(), VISITORS);
    assert!(per_shard.iter().all(|&v| v > VISITORS / 4), "the key spreads visitors: {per_shard:?}");

    // A replayed batch: each shard's block is identical to one it stored, and is dropped.
    insert();
    sync();
    for node in &cluster.nodes {
        assert_eq!(node.server.sql_u64(&all), 2 * VISITORS, "{}: the replay was deduplicated", node.name);
    }
}

/// Adding a shard (docs/operations.md, "Adding a shard"): a 1 x 2 cluster with rows grows to
/// 2 x 2; `aggregator migrate` gives the new nodes every table (`SHOW CREATE` of a node that
/// has them, macros included), the tables replicated on every node copy their rows there (the
/// salts), and a collector's beacons then reach both shards, every one stored once.
#[test]
fn a_shard_added_to_a_running_cluster_gets_the_tables_and_the_new_rows() {
    let test = "grow";
    let mut cluster = Cluster::start(test, 1, 2);
    let mut install = Install::on_cluster(&cluster, test);
    let c = install.collector(SITE);
    wait_ready(&c);
    let before = Load::send_all(c.addr, 0..300, 4);
    assert_eq!(before.accepted().len(), 300);
    assert!(c.stop().success(), "the first collector flushed its rows and stopped");

    cluster.grow();
    let out = install.grow(&cluster);
    assert!(out.contains("tables created on nodes that lacked them"), "{out}");
    let tables = |node: &e2e::cluster::Node| {
        node.server.sql(&format!(
            "SELECT database, name, engine FROM system.tables WHERE database LIKE '{}\\_%' ORDER BY database, name",
            install.prefix
        ))
    };
    let expected = tables(&cluster.nodes[0]);
    assert!(expected.lines().count() > 30, "{expected}");
    for node in &cluster.nodes {
        assert_eq!(tables(node), expected, "{} has the installation's tables", node.name);
    }
    install.sync_replicas();
    for node in cluster.shard(2) {
        assert_eq!(
            node.server.sql_u64(&format!("SELECT count() FROM {}_meta.salts", install.prefix)),
            2,
            "{}",
            node.name
        );
    }
    let again = install.aggregator(&["migrate"]);
    assert!(!String::from_utf8_lossy(&again.stdout).contains("tables created"), "a second migrate creates nothing");

    // A collector started now: beacons through the Distributed tables reach both shards.
    let c = install.collector(SITE);
    wait_ready(&c);
    let after = Load::send_all(c.addr, 300..900, 4);
    assert_eq!(after.accepted().len(), 600);
    let accepted: Vec<u64> = before.accepted().into_iter().chain(after.accepted()).collect();
    for arrival in assert_all_arrive(test, &install, &c, &accepted, Duration::from_secs(60)) {
        assert_eq!(arrival.duplicates, 0, "{}", arrival.table);
    }
    let local = format!("SELECT count() FROM {}_audience.events_local", install.prefix);
    let per_shard: Vec<u64> = [1, 2].map(|shard| cluster.shard(shard).next().unwrap().server.sql_u64(&local)).into();
    eprintln!("[{test}] audience rows per shard after the growth: {per_shard:?}");
    assert_eq!(per_shard.iter().sum::<u64>(), 900);
    assert!(per_shard[1] > 100, "the new shard takes rows: {per_shard:?}");
}

/// Beacons per second of the fault tests' load, over 4 connections.
const RATE: f64 = 200.0;

/// Runs `fault` under load against a collector of a fresh 2x2 cluster's installation, then
/// checks that every beacon answered 202 is stored exactly once. `fault` returns when the
/// cluster is whole again, with the time the fault began and ended on the load's clock.
fn under_load(test: &str, fault: impl FnOnce(&Cluster, &Load) -> (Duration, Duration)) {
    let started = Instant::now();
    let cluster = Cluster::start(test, 2, 2);
    let install = Install::on_cluster(&cluster, test);
    let c = install.collector(SITE);
    wait_ready(&c);
    eprintln!("[{test}] cluster, schema and collector ready in {}", secs(started.elapsed()));

    let load = Load::start(c.addr, RATE, 4);
    std::thread::sleep(Duration::from_secs(3));
    let (from, to) = fault(&cluster, &load);
    eprintln!("[{test}] fault from {} to {}", secs(from), secs(to));
    std::thread::sleep(Duration::from_secs(3));
    let tally = load.finish();
    tally.report(test);

    tally.assert_refusals_are_503_with_retry_after(&[]);
    assert!(tally.unanswered().is_empty(), "the collector stopped answering: {:?}", tally.unanswered().first());
    let during = tally.accepted_between(from, to);
    assert!(during > 0, "nothing was accepted during the fault: the test proves nothing");
    let failed = c.metric_sum("webstats_collector_sink_inserts_total", &[("outcome", "transient_error")]);
    eprintln!("[{test}] accepted during the fault: {during}; inserts that failed: {failed}");
    // A node failing is not the data's fault: nothing may be set aside as a dead letter.
    assert_eq!(c.metric_sum("webstats_collector_dead_letter_rows_total", &[]), 0.0, "dead letters");
    let accepted = tally.accepted();
    let mut arrivals = assert_all_arrive(test, &install, &c, &accepted, Duration::from_secs(120));
    let twice = |arrivals: &[Arrival]| arrivals.iter().map(|a| a.duplicates).sum::<u64>();
    if twice(&arrivals) > 0 {
        // An insert whose ZooKeeper commit got no answer ends in "Unknown status, client must
        // retry" (code 319); 18.16 keeps that part on the node, unregistered, until its part
        // check drops it (5 min), while the retry stores the registered copy
        // (docs/operations.md, "What each failure does"). Anything else is a failed deduplication.
        let unknown = in_node_logs(&cluster, "Unknown status, client must retry");
        assert!(unknown > 0, "rows stored twice without an insert of unknown status: a replay was not deduplicated");
        eprintln!(
            "[{test}] {} rows stored twice after {unknown} log lines of unknown status; waiting for the part check",
            twice(&arrivals)
        );
        let waiting = Instant::now();
        while twice(&arrivals) > 0 {
            assert!(waiting.elapsed() < Duration::from_secs(480), "rows still stored twice after 8 min");
            std::thread::sleep(Duration::from_secs(15));
            arrivals = [install.audience(), install.troubleshooting()]
                .map(|table| wait_arrival(&install, &table, &accepted, Duration::from_secs(5)))
                .into();
        }
        eprintln!("[{test}] every beacon stored exactly once after {} more", secs(waiting.elapsed()));
    }
    eprintln!(
        "[{test}] blocks the replicated tables dropped as already stored: {}",
        in_node_logs(&cluster, "already exists; ignoring it")
    );
    eprintln!("[{test}] done in {}", secs(started.elapsed()));
}

#[test]
fn a_replica_killed_and_restarted_under_load_loses_nothing() {
    under_load("replica", |cluster, load| {
        let victim = cluster.shard(2).next().expect("shard 2 has replicas");
        victim.kill();
        let from = load.elapsed();
        eprintln!("[replica] {} SIGKILLed at {}", victim.name, secs(from));
        std::thread::sleep(Duration::from_secs(5));
        cluster.heal();
        (from, load.elapsed())
    });
}

#[test]
fn a_shard_stopped_for_15_s_under_load_loses_nothing() {
    under_load("shard", |cluster, load| {
        for node in cluster.shard(2) {
            node.stop();
        }
        let from = load.elapsed();
        eprintln!("[shard] shard 2 stopped at {}", secs(from));
        std::thread::sleep(Duration::from_secs(15));
        cluster.heal();
        (from, load.elapsed())
    });
}

#[test]
fn zookeeper_stopped_for_10_s_under_load_loses_nothing() {
    under_load("zookeeper", |cluster, load| {
        cluster.stop_zookeeper();
        let from = load.elapsed();
        eprintln!("[zookeeper] ZooKeeper stopped at {}", secs(from));
        std::thread::sleep(Duration::from_secs(10));
        cluster.heal();
        (from, load.elapsed())
    });
}

/// How many lines of the nodes' server logs hold `needle` (18.16 logs a block dropped as
/// identical to a stored one as "Block with ID ... already exists; ignoring it.").
fn in_node_logs(cluster: &Cluster, needle: &str) -> usize {
    cluster
        .nodes
        .iter()
        .flat_map(|node| e2e::scan::files_under(&node.server.dir().join("log")))
        .filter(|log| !log.to_string_lossy().contains("err"))
        .map(|log| std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.contains(needle)).count())
        .sum()
}
