//! Harness for the end-to-end tests: the real `collector` and `aggregator` binaries, driven
//! over HTTP and their command lines, against the real ClickHouse server that
//! `scripts/test.sh` starts. Each test works under its own database prefix, so tests run in
//! parallel on one server.
//!
//! Environment (set by scripts/test.sh):
//! - `WEBSTATS_TEST_CLICKHOUSE_URL`: the server's HTTP URL.
//! - `WEBSTATS_TEST_CLICKHOUSE_DIR`: its run directory (`data/`, `log/`), for privacy scans.
//! - `WEBSTATS_TEST_GEOIP_DIR`: folder with `country.mmdb` and `asn.mmdb`.
//! - `WEBSTATS_CH_PASSWORD_ADMIN`: the server's admin password.
//!
//! Each [`Install`] has its own role users (`<prefix>_ingest`, ...), written to the server's
//! `users.d/` with `aggregator roles`, and the collectors it starts connect as those users.
//!
//! Fault tests start a ClickHouse server of their own ([`Server::private`]), which they can
//! stop and restart, and install on it with [`Install::on`]; collectors can be killed
//! ([`Collector::kill`]) and restarted on the same config and spool ([`Collector::restart`]).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

pub mod balancer;
pub mod browser;
pub mod cluster;
pub mod grafana;
pub mod load;
pub mod scan;
pub mod seed;
mod server;

pub use server::Server;

pub fn clickhouse_url() -> String {
    std::env::var("WEBSTATS_TEST_CLICKHOUSE_URL")
        .expect("WEBSTATS_TEST_CLICKHOUSE_URL is not set: run the tests with scripts/test.sh, which starts ClickHouse")
}

pub fn clickhouse_dir() -> PathBuf {
    std::env::var_os("WEBSTATS_TEST_CLICKHOUSE_DIR")
        .expect("WEBSTATS_TEST_CLICKHOUSE_DIR is not set: run the tests with scripts/test.sh")
        .into()
}

pub fn geoip_dir() -> PathBuf {
    std::env::var_os("WEBSTATS_TEST_GEOIP_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".work/geoip"))
}

/// What scripts/bots.sh fetched: the bot list, the hosting networks, the User-Agent corpora.
pub fn bots_dir() -> PathBuf {
    std::env::var_os("WEBSTATS_TEST_BOTS_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".work/bots"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e/ is inside the repository").to_owned()
}

/// A built binary of the workspace (`cargo test --workspace` builds them before tests run).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe.parent().and_then(Path::parent).expect("test binaries live in target/<profile>/deps").join(name);
    assert!(path.is_file(), "{} is missing: build the workspace first (scripts/test.sh does)", path.display());
    path
}

/// A database prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("t_{test}_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos % 100_000)
}

/// An HTTP client that returns every status as a response.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

pub fn admin_password() -> String {
    std::env::var("WEBSTATS_CH_PASSWORD_ADMIN")
        .expect("WEBSTATS_CH_PASSWORD_ADMIN is not set: run the tests with scripts/test.sh")
}

/// Runs SQL as the admin on the shared server; returns the body, panicking with the server's
/// message on error.
pub fn sql(query: &str) -> String {
    Server::shared().sql(query)
}

/// Runs SQL as `user` on the shared server: the body, or the server's error message.
pub fn sql_as(user: &str, password: &str, query: &str) -> Result<String, String> {
    Server::shared().sql_as(user, password, query)
}

/// Runs a query with `FORMAT JSONEachRow` appended and parses each row.
pub fn sql_rows(query: &str) -> Vec<serde_json::Value> {
    Server::shared().sql_rows(query)
}

/// A single number from a query.
pub fn sql_u64(query: &str) -> u64 {
    Server::shared().sql_u64(query)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A test's installation: its own prefix, role users, config files and working folder, on
/// the shared server ([`Install::new`]) or on a given one ([`Install::on`]).
pub struct Install {
    pub prefix: String,
    pub dir: tempfile::TempDir,
    server: Server,
    /// On a cluster: its name and every node (the role users go on each); `server` is the
    /// first node, which the aggregator and collectors talk to.
    cluster: Option<(String, Vec<Server>)>,
    /// `(password variable, password)` of each role user.
    passwords: Vec<(&'static str, String)>,
}

impl Install {
    /// Runs `aggregator migrate` as admin on the shared server and creates the installation's
    /// role users.
    pub fn new(test: &str) -> Self {
        Self::on(&Server::shared(), test)
    }

    /// Like [`Self::new`], on `server`: role users in its `users.d/`, its admin password for
    /// the aggregator, its URL for collectors and for [`Self::sql`] and friends.
    pub fn on(server: &Server, test: &str) -> Self {
        Self::set_up(server, None, test)
    }

    /// Like [`Self::new`], on a cluster (`[clickhouse] cluster` for the aggregator and the
    /// collectors): the role users on every node.
    pub fn on_cluster(cluster: &cluster::Cluster, test: &str) -> Self {
        let nodes = cluster.nodes.iter().map(|n| n.server.clone()).collect();
        Self::set_up(&cluster.nodes[0].server, Some((cluster.name.clone(), nodes)), test)
    }

    fn set_up(server: &Server, cluster: Option<(String, Vec<Server>)>, test: &str) -> Self {
        let prefix = unique_prefix(test);
        let passwords =
            store::roles::Role::ALL.iter().map(|r| (r.password_env(), format!("{prefix}-{}-pw", r.name()))).collect();
        let install = Self { prefix, dir: tempfile::tempdir().unwrap(), server: server.clone(), cluster, passwords };
        install.configure_aggregator("");
        let out = install.aggregator(&["migrate"]);
        assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
        install.add_role_users(&install.nodes());
        install
    }

    /// After [`cluster::Cluster::grow`]: the new nodes join the installation (role users, the
    /// aggregator's `[cluster] nodes`); `aggregator migrate`'s output, which gives them the
    /// tables.
    pub fn grow(&mut self, cluster: &cluster::Cluster) -> String {
        let known: Vec<String> = self.nodes().iter().map(|n| n.url().to_owned()).collect();
        let nodes: Vec<Server> = cluster.nodes.iter().map(|n| n.server.clone()).collect();
        let new: Vec<Server> = nodes.iter().filter(|n| !known.iter().any(|k| k == n.url())).cloned().collect();
        self.cluster = Some((cluster.name.clone(), nodes));
        self.configure_aggregator("");
        let out = self.aggregator(&["migrate"]);
        assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
        self.add_role_users(&new);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes the installation's role users into `nodes`' `users.d/` and waits until they log in.
    fn add_role_users(&self, nodes: &[Server]) {
        let roles = self.aggregator(&["roles"]);
        assert!(roles.status.success(), "roles failed: {}", String::from_utf8_lossy(&roles.stderr));
        for node in nodes {
            // Written whole, then renamed: ClickHouse must never read half a file.
            let users_file = node.users_dir().join(format!("{}.xml", self.prefix));
            let partial = users_file.with_extension("tmp");
            std::fs::write(&partial, &roles.stdout).unwrap();
            std::fs::rename(&partial, users_file).unwrap();
        }
        // ClickHouse reloads users.d within a few seconds.
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in nodes {
            while node
                .sql_as(&self.user(store::roles::Role::Ingest), &self.password(store::roles::Role::Ingest), "SELECT 1")
                .is_err()
            {
                assert!(Instant::now() < deadline, "the role users did not appear");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// On a cluster, waits until every replica has fetched what the others stored, so that any
    /// read sees every row; nothing to do on one server.
    pub fn sync_replicas(&self) {
        if self.cluster.is_none() {
            return;
        }
        let databases = store::Databases::new(&self.prefix).expect("a valid prefix");
        let local = store::cluster::LOCAL;
        let tables = [
            databases.salts(),
            format!("{}{local}", databases.audience_events()),
            format!("{}{local}", databases.troubleshooting_events()),
        ];
        for node in self.nodes() {
            for table in &tables {
                node.sql(&format!("SYSTEM SYNC REPLICA {table}"));
            }
        }
    }

    /// `TRUNCATE TABLE table`; on a cluster sent to the table's leader replica, since 18.16
    /// forwards it there as a user the installation does not have.
    pub fn truncate(&self, table: &str) {
        let (database, name) = table.split_once('.').expect("database.table");
        let leads = |node: &Server| {
            node.sql_u64(&format!(
                "SELECT count() FROM system.replicas WHERE database = '{database}' AND table = '{name}' AND is_leader"
            )) > 0
        };
        let node = match &self.cluster {
            Some((_, nodes)) => nodes.iter().find(|n| leads(n)).expect("a leader replica").clone(),
            None => self.server.clone(),
        };
        node.sql(&format!("TRUNCATE TABLE {table}"));
    }

    /// Every server the installation is on: the server, or each node of the cluster.
    pub fn nodes(&self) -> Vec<Server> {
        match &self.cluster {
            Some((_, nodes)) => nodes.clone(),
            None => vec![self.server.clone()],
        }
    }

    /// The server the installation is on.
    pub fn server(&self) -> &Server {
        &self.server
    }

    pub fn user(&self, role: store::roles::Role) -> String {
        format!("{}_{}", self.prefix, role.name())
    }

    pub fn password(&self, role: store::roles::Role) -> String {
        self.passwords.iter().find(|(var, _)| *var == role.password_env()).expect("every role has a password").1.clone()
    }

    /// `[clickhouse]` for the aggregator: the admin user.
    pub fn clickhouse_section(&self) -> String {
        format!(
            "[clickhouse]\nurl = \"{}\"\nuser = \"admin\"\npassword_env = \"WEBSTATS_CH_PASSWORD_ADMIN\"\ndatabase_prefix = \"{}\"\n{}",
            self.server.url(),
            self.prefix,
            self.cluster_line(),
        )
    }

    /// `cluster = "..."` for a `[clickhouse]` section on a cluster; empty otherwise.
    fn cluster_line(&self) -> String {
        self.cluster.as_ref().map(|(name, _)| format!("cluster = \"{name}\"\n")).unwrap_or_default()
    }

    pub fn aggregator_config(&self) -> PathBuf {
        self.dir.path().join("aggregator.toml")
    }

    /// Rewrites the aggregator config with `extra` after `[clickhouse]` (and on a cluster,
    /// `[cluster] nodes` last).
    pub fn configure_aggregator(&self, extra: &str) {
        let nodes = match &self.cluster {
            Some((_, nodes)) => {
                let urls: Vec<String> = nodes.iter().map(|n| format!("\"{}\"", n.url())).collect();
                format!("[cluster]\nnodes = [{}]\n", urls.join(", "))
            }
            None => String::new(),
        };
        std::fs::write(self.aggregator_config(), format!("{}{extra}{nodes}", self.clickhouse_section())).unwrap();
    }

    pub fn aggregator(&self, args: &[&str]) -> Output {
        self.aggregator_with_env(args, &[])
    }

    pub fn aggregator_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(binary("aggregator"))
            .arg("--config")
            .arg(self.aggregator_config())
            .args(args)
            .env("WEBSTATS_CH_PASSWORD_ADMIN", self.server.admin_password())
            .envs(self.passwords.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(env.iter().copied())
            .output()
            .expect("the aggregator runs")
    }

    pub fn audience(&self) -> String {
        format!("{}_audience.events", self.prefix)
    }

    pub fn troubleshooting(&self) -> String {
        format!("{}_troubleshooting.events", self.prefix)
    }

    /// Runs SQL as admin on the installation's server (see [`Server::sql`]). On a cluster an
    /// insert into a Distributed table returns once every shard has its rows, as the
    /// collector's do.
    pub fn sql(&self, query: &str) -> String {
        let settings = if self.cluster.is_some() { "insert_distributed_sync=1" } else { "" };
        self.server
            .try_sql_with("admin", self.server.admin_password(), query, settings)
            .unwrap_or_else(|e| panic!("ClickHouse at {} does not answer: {e}", self.server.url()))
            .unwrap_or_else(|e| panic!("ClickHouse refused {query}: {e}"))
    }

    /// [`Server::sql_rows`] on the installation's server.
    pub fn sql_rows(&self, query: &str) -> Vec<serde_json::Value> {
        self.server.sql_rows(query)
    }

    /// [`Server::sql_u64`] on the installation's server.
    pub fn sql_u64(&self, query: &str) -> u64 {
        self.server.sql_u64(query)
    }

    /// `<prefix>_ingest.<table>` ("audience" or "troubleshooting").
    pub fn ingest(&self, table: &str) -> String {
        format!("{}_ingest.{table}", self.prefix)
    }

    /// Sets the ingest table `table` aside (with its materialized views): the collector's
    /// inserts fail with "table doesn't exist" (code 60), a transient error, so its rows wait
    /// in the spool while ClickHouse stays up. [`Self::restore_ingest`] puts it back.
    pub fn hide_ingest(&self, table: &str) {
        self.sql(&format!("RENAME TABLE {0} TO {0}_away", self.ingest(table)));
    }

    /// Sets the ingest table `table` aside and puts in its place a `Null` table whose first
    /// column is so wide that no batch has enough bytes for it: every RowBinary insert fails
    /// with "Cannot read all data" (code 33), a data error, so batches become dead letters. (A
    /// lone `x UInt8` column would not do: any bytes parse as UInt8 rows.)
    pub fn refuse_ingest(&self, table: &str) {
        let ingest = self.ingest(table);
        let columns: Vec<String> = self
            .sql_rows(&format!("DESCRIBE TABLE {ingest}"))
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (name, kind) = (r["name"].as_str().unwrap(), r["type"].as_str().unwrap());
                if i == 0 { format!("{name} FixedString(1000000)") } else { format!("{name} {kind}") }
            })
            .collect();
        self.hide_ingest(table);
        self.sql(&format!("CREATE TABLE {ingest} ({}) ENGINE = Null", columns.join(", ")));
    }

    /// Undoes [`Self::hide_ingest`] or [`Self::refuse_ingest`].
    pub fn restore_ingest(&self, table: &str) {
        let ingest = self.ingest(table);
        self.sql(&format!("DROP TABLE IF EXISTS {ingest}"));
        self.sql(&format!("RENAME TABLE {ingest}_away TO {ingest}"));
    }

    /// Rows in `table` (such as [`Self::audience`]) now.
    pub fn count(&self, table: &str) -> u64 {
        self.server.sql_u64(&format!("SELECT count() FROM {table}"))
    }

    /// [`Server::wait_for_count`] on the installation's server.
    pub fn wait_for_count(&self, query: &str, expected: u64) -> u64 {
        self.server.wait_for_count(query, expected)
    }

    /// The salt of the period containing `at` (when the beacons were sent) and of the one after
    /// it. Runs `aggregator salts` first: a test that crosses a period boundary after `migrate`
    /// would otherwise find no salt for the period after `at`.
    pub fn salts_at(&self, at: std::time::SystemTime) -> (store::pseudonym::SaltKeys, store::pseudonym::SaltKeys) {
        let out = self.aggregator(&["salts"]);
        assert!(out.status.success(), "aggregator salts: {}", String::from_utf8_lossy(&out.stderr));
        let at = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let rows = self.sql_rows(&format!(
            "SELECT hex(salt) AS salt FROM {}_meta.salts WHERE period_end > toDateTime({at}) \
             ORDER BY period_start, salt LIMIT 1 BY period_start LIMIT 2",
            self.prefix
        ));
        assert_eq!(rows.len(), 2, "expected the salts of the period at {at} and the next, found {rows:?}");
        let keys = |i: usize| {
            let hex = rows[i]["salt"].as_str().unwrap();
            let bytes: Vec<u8> = (0..32).map(|j| u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).unwrap()).collect();
            store::pseudonym::SaltKeys::derive(&bytes.try_into().unwrap())
        };
        (keys(0), keys(1))
    }

    /// Starts a collector that flushes every 200 ms, with `extra` appended (sites, geoip, ...).
    /// An `extra` with a `[sink]` section of its own replaces that default.
    pub fn collector(&self, extra: &str) -> Collector {
        if extra.contains("[sink]") {
            self.collector_with(extra, &[])
        } else {
            self.collector_with(&format!("[sink]\nflush_interval_ms = 200\n{extra}"), &[])
        }
    }

    /// Starts a collector with `[server]`, `[clickhouse]` and `[salts]` filled in (the ingest
    /// roles; salts and blocklist refreshed every second), `extra` appended, and extra
    /// environment variables; waits until `/healthz` answers.
    pub fn collector_with(&self, extra: &str, env: &[(&str, &str)]) -> Collector {
        self.collector_with_server("", extra, env)
    }

    /// Like [`Self::collector_with`], with `server` (`key = value` lines) added to `[server]`,
    /// which TOML does not let `extra` reopen.
    ///
    /// Each collector gets a spool directory of its own, `spool-<port>` next to its config
    /// (two collectors cannot share one), unless `extra` has a `[spool]` section.
    pub fn collector_with_server(&self, server: &str, extra: &str, env: &[(&str, &str)]) -> Collector {
        let port = free_port();
        let config = self.dir.path().join(format!("collector-{port}.toml"));
        let spool =
            if !extra.contains("[spool]") { format!("\n[spool]\ndir = \"spool-{port}\"\n") } else { String::new() };
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nshutdown_timeout_ms = 10000\n{server}\n\
                 [clickhouse]\nurl = \"{url}\"\nuser = \"{ingest}\"\npassword_env = \"WEBSTATS_CH_PASSWORD_INGEST\"\n\
                 database_prefix = \"{prefix}\"\n{cluster}\
                 [salts]\nrefresh_interval_s = 1\nuser = \"{meta}\"\npassword_env = \"WEBSTATS_CH_PASSWORD_INGEST_META\"\n{extra}{spool}",
                url = self.server.url(),
                ingest = self.user(store::roles::Role::Ingest),
                meta = self.user(store::roles::Role::IngestMeta),
                prefix = self.prefix,
                cluster = self.cluster_line(),
            ),
        )
        .unwrap();
        self.launch(&config, env)
    }

    /// Starts a collector on an existing config file, such as a stopped collector's
    /// [`Collector::config`]: same port, same spool, same log (appended). Its environment is
    /// the role passwords only; [`Collector::restart`] also keeps the extra variables.
    /// Waits until `/healthz` answers.
    pub fn collector_at(&self, config: &Path) -> Collector {
        self.launch(config, &[])
    }

    fn launch(&self, config: &Path, env: &[(&str, &str)]) -> Collector {
        let text = std::fs::read_to_string(config).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let listen = toml_string(&text, "server", "listen").expect("the config has [server] listen");
        let addr: SocketAddr = listen.parse().unwrap_or_else(|e| panic!("listen = {listen:?}: {e}"));
        let folder = config.parent().expect("a config file is in a folder");
        let spool_dir = folder.join(toml_string(&text, "spool", "dir").unwrap_or_else(|| "spool".into()));
        let stem = config.file_stem().expect("a config file name").to_string_lossy();
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.splice(0..0, self.passwords.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let mut collector = Collector {
            child: None,
            addr,
            log: folder.join(format!("{stem}.log")),
            config: config.to_owned(),
            spool_dir,
            env,
        };
        collector.spawn();
        collector
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Config files and collector logs, for the failure's diagnosis.
            self.dir.disable_cleanup(true);
            eprintln!(
                "the failed test's installation folder (configs, collector logs, spools) is kept: {}",
                self.dir.path().display()
            );
        }
        for node in self.nodes() {
            let _ = std::fs::remove_file(node.users_dir().join(format!("{}.xml", self.prefix)));
        }
        // A private server's or a cluster's directories go with them; they may be stopped now.
        if self.server.is_private() || self.cluster.is_some() {
            return;
        }
        let databases = store::Databases::new(&self.prefix).expect("a valid prefix");
        // Views first: a view whose source is gone cannot be dropped on 18.16.
        for db in [databases.ingest(), databases.stage()].into_iter().chain(databases.all()) {
            let _ =
                self.server.try_sql_as("admin", self.server.admin_password(), &format!("DROP DATABASE IF EXISTS {db}"));
        }
    }
}

/// `scheme://host[:port]` of a beacon body's `url`, if it is JSON with one.
fn page_origin(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let url = value.get("url")?.as_str()?;
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// The string value of `key` in `[section]` of a TOML text, for the simple files the harness
/// writes (`key = "value"` on one line); the last one wins.
fn toml_string(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = "";
    let mut found = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[') {
            current = name.trim_start_matches('[').trim_end_matches(']').trim();
        } else if current == section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            let v = v.trim();
            let value = match v.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or_default(),
                None => v.split('#').next().unwrap_or_default().trim(),
            };
            found = Some(value.to_owned());
        }
    }
    found
}

/// A collector process, possibly stopped: its config file and spool outlive the process, so
/// it can be restarted on them ([`Self::restart`]).
pub struct Collector {
    /// `None` only while (re)starting.
    child: Option<Child>,
    pub addr: SocketAddr,
    /// Its log (stdout and stderr of every run, appended).
    pub log: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    /// Its spool directory (`[spool] dir`, relative to the config's folder; default `spool`).
    pub spool_dir: PathBuf,
    /// Environment variables it runs with (role passwords and the test's own).
    env: Vec<(String, String)>,
}

/// A response: status, headers, body.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Collector {
    /// Starts the process (appending to the log) and waits until `/healthz` answers 200;
    /// panics with the log if it exits first.
    fn spawn(&mut self) {
        let mut log = std::fs::File::options().create(true).append(true).open(&self.log).unwrap();
        if log.metadata().map(|m| m.len() > 0).unwrap_or(false) {
            let _ = std::io::Write::write_all(&mut log, b"----- harness: collector restarted -----\n");
        }
        let child = Command::new(binary("collector"))
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the collector starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child_mut().try_wait().unwrap() {
                panic!("the collector exited ({status}) before answering /healthz; its log:\n{}", self.log_text());
            }
            if self.try_get("/healthz").is_some_and(|r| r.0 == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "/healthz did not answer 200 within 30 s; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the collector was started")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let reply = self.request("GET", path, &[], None);
        (reply.status, reply.text())
    }

    /// Like [`Self::get`], but `None` while nothing answers (starting or stopped).
    pub fn try_get(&self, path: &str) -> Option<(u16, String)> {
        let mut response = http().get(&self.url(path)).call().ok()?;
        let status = response.status().as_u16();
        Some((status, response.body_mut().read_to_string().ok()?))
    }

    /// Any request; `body` is sent as is.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
        let mut builder = http::Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let agent = http();
        let result = match body {
            Some(b) => agent.run(builder.body(b.to_vec()).unwrap()),
            None => agent.run(builder.body(()).unwrap()),
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let mut body = Vec::new();
        response.body_mut().as_reader().read_to_end(&mut body).unwrap();
        Reply { status: response.status().as_u16(), headers: response.headers().clone(), body }
    }

    /// POSTs a beacon as `text/plain` with the `Origin` of its page, as a browser's sendBeacon
    /// does; `headers` may name another `Origin`. A POST without one is a bot
    /// (`transport:no_origin`): [`Self::beacon_without_origin`] sends that.
    pub fn beacon(&self, body: &str, headers: &[(&str, &str)]) -> Reply {
        let origin = page_origin(body);
        let named = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("origin"));
        let mut all: Vec<(&str, &str)> =
            origin.as_deref().filter(|_| !named).map(|o| ("origin", o)).into_iter().collect();
        all.extend_from_slice(headers);
        self.beacon_without_origin(body, &all)
    }

    /// POSTs a beacon as `text/plain` with `headers` only, as a server or an app would.
    pub fn beacon_without_origin(&self, body: &str, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("content-type", "text/plain;charset=UTF-8")];
        all.extend_from_slice(headers);
        self.request("POST", "/api/event", &all, Some(body.as_bytes()))
    }

    /// The value of a metric line (exact name with labels), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.get("/metrics")
            .1
            .lines()
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// The sum of metric `name` over the series whose labels include all of `labels`, in any
    /// order (`&[]`: every series); 0 when none.
    pub fn metric_sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_sum(&self.get("/metrics").1, name, labels)
    }

    pub fn wait_until(&self, mut done: impl FnMut(&Self) -> bool, what: &str) {
        self.wait_until_for(Duration::from_secs(30), |c| done(c), what)
    }

    /// Like [`Self::wait_until`], with a deadline of `within`.
    pub fn wait_until_for(&self, within: Duration, mut done: impl FnMut(&Self) -> bool, what: &str) {
        let deadline = Instant::now() + within;
        loop {
            if done(self) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; collector log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `bytes` as they are on a new connection (a request hyper's client could not
    /// send: malformed, oversized, pipelined) and reads until the collector closes it, resets
    /// it, or 15 s pass. Write errors are ignored: the collector may answer and close before
    /// it has read everything.
    pub fn raw(&self, bytes: &[u8]) -> RawReply {
        let started = Instant::now();
        let mut stream = TcpStream::connect(self.addr).expect("the collector accepts connections");
        let _ = stream.write_all(bytes);
        read_raw(&mut stream, started, Duration::from_secs(15))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id of the current run.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the collector was started").id()
    }

    /// Resident memory of the process (`VmRSS` of /proc/<pid>/status) in bytes; `None` when
    /// it is not running.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let kib: u64 =
            status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    }

    /// Whether the process is still running (not exited).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL (a crash: no flush, no spool write, no cleanup), then waits for the exit.
    pub fn kill(&mut self) -> ExitStatus {
        let child = self.child_mut();
        let _ = child.kill();
        child.wait().expect("the collector can be waited for")
    }

    /// SIGTERM, without waiting.
    pub fn signal_terminate(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
    }

    /// SIGTERM, then waits up to 30 s for the exit; the process stays restartable.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal_terminate();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child_mut().try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the collector did not stop within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate()
    }

    /// Starts the collector again with the same config file (so the same port and spool) and
    /// environment, after [`Self::kill`] or [`Self::terminate`]; waits until `/healthz`
    /// answers.
    pub fn restart(&mut self) {
        assert!(!self.is_running(), "restart() needs a stopped collector: kill() or terminate() it first");
        self.spawn();
    }

    /// The spool's segment files (`*.seg` under [`Self::spool_dir`], not in `dead-letter/`),
    /// sorted by path.
    pub fn spool_segments(&self) -> Vec<PathBuf> {
        let mut segments: Vec<PathBuf> = scan::files_under(&self.spool_dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .filter(|p| !p.strip_prefix(&self.spool_dir).is_ok_and(|r| r.starts_with("dead-letter")))
            .collect();
        segments.sort();
        segments
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a raw connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEnd {
    /// The peer closed it (read returned 0).
    Closed,
    /// A read failed: usually a reset.
    Failed,
    /// Still open when the time was up.
    Open,
}

/// What came back on a raw connection: every byte read, how it ended, and when.
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    pub end: RawEnd,
    /// From the connect to the end of reading.
    pub elapsed: Duration,
}

impl RawReply {
    /// The head of the first response, if one came: status line and headers.
    fn head(&self) -> Option<&str> {
        let end = self.bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        std::str::from_utf8(&self.bytes[..end]).ok()
    }

    /// The status of the first response; `None` when the connection ended without one.
    pub fn status(&self) -> Option<u16> {
        self.head()?.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
    }

    /// A header of the first response (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head()?.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body of the first response: `Content-Length` bytes after the head.
    pub fn body(&self) -> &[u8] {
        let Some(start) = self.bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else { return &[] };
        let len = self.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(self.bytes.len() - start);
        &self.bytes[start..(start + len).min(self.bytes.len())]
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.body()).unwrap_or_else(|e| panic!("not JSON ({e}): {self}"))
    }

    /// How many responses came on the connection (pipelined or smuggled requests).
    pub fn responses(&self) -> usize {
        self.bytes.windows(9).filter(|w| w.starts_with(b"HTTP/1.")).count()
    }
}

impl std::fmt::Display for RawReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.bytes[..self.bytes.len().min(600)];
        write!(f, "{:?} after {:?}: {}", self.end, self.elapsed, String::from_utf8_lossy(shown))
    }
}

/// Reads from `stream` until it closes, fails, or `limit` has passed since `started`.
pub fn read_raw(stream: &mut TcpStream, started: Instant, limit: Duration) -> RawReply {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        let Some(left) = limit.checked_sub(started.elapsed()).filter(|d| !d.is_zero()) else { break RawEnd::Open };
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => break RawEnd::Closed,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break RawEnd::Failed,
        }
    };
    RawReply { bytes, end, elapsed: started.elapsed() }
}

/// The sum of metric `name` in a Prometheus text exposition over the series whose labels
/// include all of `labels` (in any order); 0 when none.
pub fn metric_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (series_labels, value) = match rest.strip_prefix('{') {
            Some(inner) => match inner.split_once('}') {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
        };
        let has = |(k, v): &(&str, &str)| {
            series_labels
                .split(',')
                .any(|pair| pair.split_once('=').is_some_and(|(pk, pv)| pk == *k && pv.trim_matches('"') == *v))
        };
        if labels.iter().all(has)
            && let Ok(value) = value.trim().parse::<f64>()
        {
            sum += value;
        }
    }
    sum
}

/// Polls a SQL count on the shared server until it reaches `expected` (rows are flushed
/// asynchronously).
pub fn wait_for_count(query: &str, expected: u64) -> u64 {
    Server::shared().wait_for_count(query, expected)
}
