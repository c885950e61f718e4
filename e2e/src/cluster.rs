//! A ClickHouse cluster of the test's own: `scripts/cluster.sh` starts ZooKeeper and
//! SHARDS x REPLICAS servers on loopback; dropping the [`Cluster`] stops them and removes their
//! directories.

use std::{path::PathBuf, process::Command};

use crate::{repo_root, server::Server};

pub struct Cluster {
    /// The cluster's name in `remote_servers`, also its directories' prefix.
    pub name: String,
    pub nodes: Vec<Node>,
    admin_password: String,
    replicas: u32,
}

pub struct Node {
    /// `<cluster>-s<shard>r<replica>`: its directory under `.work/clickhouse/`.
    pub name: String,
    pub shard: u32,
    pub server: Server,
}

impl Cluster {
    /// Starts a cluster named after the test and this process, on ports outside the ephemeral
    /// range (with room for one more shard, see [`Self::grow`]); waits until ON CLUSTER DDL
    /// reaches every node.
    pub fn start(test: &str, shards: u32, replicas: u32) -> Cluster {
        let name = format!("e2e_{test}_{}", std::process::id());
        let span = (10 + 3 * (shards + 1) * replicas) as u16;
        // Tests of one binary run at once and draw the same candidates: each takes its range
        // here before its servers bind it, so two never pick overlapping ones.
        static TAKEN: std::sync::Mutex<Vec<std::ops::Range<u16>>> = std::sync::Mutex::new(Vec::new());
        let mut taken = TAKEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let base = (0..200)
            .map(|i| 20_000 + ((std::process::id() * 7 + i * 97) % 11_000) as u16)
            .filter(|base| !taken.iter().any(|r| r.start < base + span && *base < r.end))
            .find(|base| (0..span).all(|p| std::net::TcpListener::bind(("127.0.0.1", base + p)).is_ok()))
            .expect("a free range of ports");
        taken.push(base..base + span);
        drop(taken);
        let out = script(&[
            "start",
            "--name",
            &name,
            "--shards",
            &shards.to_string(),
            "--replicas",
            &replicas.to_string(),
            "--base-port",
            &base.to_string(),
        ]);
        let secrets = std::fs::read_to_string(repo_root().join(".work/cluster").join(&name).join("secrets.env"))
            .expect("cluster.sh wrote secrets.env");
        let admin_password = secrets
            .lines()
            .find_map(|l| l.strip_prefix("WEBSTATS_CH_PASSWORD_ADMIN="))
            .expect("secrets.env holds the admin password")
            .to_owned();
        let mut cluster = Cluster { name, nodes: Vec::new(), admin_password, replicas };
        cluster.nodes = cluster.nodes_of(&out);
        assert_eq!(cluster.nodes.len(), (shards * replicas) as usize, "cluster.sh start printed:\n{out}");
        cluster
    }

    /// Adds a shard: its replicas start, and every node's `remote_servers` lists it (ClickHouse
    /// reloads it); waits until ON CLUSTER DDL reaches every node. The new nodes have no tables.
    pub fn grow(&mut self) {
        let shards = self.nodes.len() as u32 / self.replicas + 1;
        let out = script(&["start", "--name", &self.name, "--shards", &shards.to_string()]);
        self.nodes = self.nodes_of(&out);
        assert_eq!(self.nodes.len() as u32, shards * self.replicas, "cluster.sh start printed:\n{out}");
    }

    /// The nodes `cluster.sh start` printed: NODE SHARD REPLICA HTTP TCP INTERSERVER.
    fn nodes_of(&self, out: &str) -> Vec<Node> {
        out.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                (f.len() == 6).then(|| Node {
                    name: f[0].to_owned(),
                    shard: f[1].parse().expect("a shard number"),
                    server: Server::attached(
                        format!("http://127.0.0.1:{}", f[3]),
                        repo_root().join(".work/clickhouse").join(f[0]),
                        self.admin_password.clone(),
                    ),
                })
            })
            .collect()
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The nodes of shard `shard` (1-based).
    pub fn shard(&self, shard: u32) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.shard == shard)
    }
}

impl Cluster {
    /// Starts whatever is stopped (a node, a shard, ZooKeeper) on its ports and data, and waits
    /// until ON CLUSTER DDL reaches every node again.
    pub fn heal(&self) {
        script(&["start", "--name", &self.name]);
    }

    /// Stops ZooKeeper (SIGTERM, waits for the exit).
    pub fn stop_zookeeper(&self) {
        run("zookeeper.sh", &["stop", "--name", &self.name]);
    }
}

impl Node {
    /// SIGKILL: no shutdown, the ZooKeeper session left to expire.
    pub fn kill(&self) {
        run("clickhouse.sh", &["kill", "--name", &self.name]);
    }

    /// Stops the server (SIGTERM, waits for the exit).
    pub fn stop(&self) {
        run("clickhouse.sh", &["stop", "--name", &self.name]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/cluster.sh"))
            .args(["stop", "--name", &self.name])
            .output();
        let dirs: Vec<PathBuf> = self
            .nodes
            .iter()
            .map(|n| repo_root().join(".work/clickhouse").join(&n.name))
            .chain([
                repo_root().join(".work/cluster").join(&self.name),
                repo_root().join(".work/zookeeper").join(&self.name),
            ])
            .collect();
        if !std::thread::panicking() {
            for dir in dirs {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// Runs scripts/cluster.sh; its stdout. Panics with everything it printed on failure.
fn script(args: &[&str]) -> String {
    run("cluster.sh", args)
}

/// Runs one of the scripts; its stdout. Panics with everything it printed on failure.
fn run(script: &str, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {args:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
