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

use std::{
    io::Read,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

pub mod scan;

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

/// Runs SQL as the admin; returns the body, panicking with the server's message on error.
pub fn sql(query: &str) -> String {
    sql_as("admin", &admin_password(), query).unwrap_or_else(|e| panic!("ClickHouse refused {query}: {e}"))
}

/// Runs SQL as `user`: the body, or the server's error message.
pub fn sql_as(user: &str, password: &str, query: &str) -> Result<String, String> {
    let mut response = http()
        .post(&clickhouse_url())
        .header("X-ClickHouse-User", user)
        .header("X-ClickHouse-Key", password)
        .send(query)
        .expect("ClickHouse answers");
    let body = response.body_mut().read_to_string().expect("a text body");
    if response.status() == 200 { Ok(body) } else { Err(body) }
}

/// Runs a query with `FORMAT JSONEachRow` appended and parses each row.
pub fn sql_rows(query: &str) -> Vec<serde_json::Value> {
    sql(&format!("{query} FORMAT JSONEachRow"))
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSONEachRow line"))
        .collect()
}

/// A single number from a query.
pub fn sql_u64(query: &str) -> u64 {
    sql(query).trim().parse().unwrap_or_else(|e| panic!("{query} did not return a number: {e}"))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A test's installation: its own prefix, role users, config files and working folder.
pub struct Install {
    pub prefix: String,
    pub dir: tempfile::TempDir,
    /// `(password variable, password)` of each role user.
    passwords: Vec<(&'static str, String)>,
}

impl Install {
    /// Runs `aggregator migrate` as admin and creates the installation's role users.
    pub fn new(test: &str) -> Self {
        let prefix = unique_prefix(test);
        let passwords =
            store::roles::Role::ALL.iter().map(|r| (r.password_env(), format!("{prefix}-{}-pw", r.name()))).collect();
        let install = Self { prefix, dir: tempfile::tempdir().unwrap(), passwords };
        std::fs::write(install.aggregator_config(), install.clickhouse_section()).unwrap();
        let out = install.aggregator(&["migrate"]);
        assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
        let roles = install.aggregator(&["roles"]);
        assert!(roles.status.success(), "roles failed: {}", String::from_utf8_lossy(&roles.stderr));
        // Written whole, then renamed: ClickHouse must never read half a file.
        let partial = install.users_file().with_extension("tmp");
        std::fs::write(&partial, roles.stdout).unwrap();
        std::fs::rename(&partial, install.users_file()).unwrap();
        // ClickHouse reloads users.d within a few seconds.
        let deadline = Instant::now() + Duration::from_secs(30);
        while sql_as(
            &install.user(store::roles::Role::Ingest),
            &install.password(store::roles::Role::Ingest),
            "SELECT 1",
        )
        .is_err()
        {
            assert!(Instant::now() < deadline, "the role users did not appear");
            std::thread::sleep(Duration::from_millis(100));
        }
        install
    }

    fn users_file(&self) -> PathBuf {
        clickhouse_dir().join("users.d").join(format!("{}.xml", self.prefix))
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
            "[clickhouse]\nurl = \"{}\"\nuser = \"admin\"\npassword_env = \"WEBSTATS_CH_PASSWORD_ADMIN\"\ndatabase_prefix = \"{}\"\n",
            clickhouse_url(),
            self.prefix
        )
    }

    pub fn aggregator_config(&self) -> PathBuf {
        self.dir.path().join("aggregator.toml")
    }

    /// Rewrites the aggregator config with `extra` after `[clickhouse]`.
    pub fn configure_aggregator(&self, extra: &str) {
        std::fs::write(self.aggregator_config(), format!("{}{extra}", self.clickhouse_section())).unwrap();
    }

    pub fn aggregator(&self, args: &[&str]) -> Output {
        self.aggregator_with_env(args, &[])
    }

    pub fn aggregator_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(binary("aggregator"))
            .arg("--config")
            .arg(self.aggregator_config())
            .args(args)
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

    /// The salt of the period containing now and of the one after it.
    pub fn salts(&self) -> (store::pseudonym::SaltKeys, store::pseudonym::SaltKeys) {
        let rows = sql_rows(&format!(
            "SELECT hex(salt) AS salt FROM {}_meta.salts WHERE period_end > now() ORDER BY period_start, salt LIMIT 1 BY period_start",
            self.prefix
        ));
        assert_eq!(rows.len(), 2, "expected the current and next salts, found {rows:?}");
        let keys = |i: usize| {
            let hex = rows[i]["salt"].as_str().unwrap();
            let bytes: Vec<u8> = (0..32).map(|j| u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).unwrap()).collect();
            store::pseudonym::SaltKeys::derive(&bytes.try_into().unwrap())
        };
        (keys(0), keys(1))
    }

    /// Starts a collector that flushes every 200 ms, with `extra` appended (sites, geoip, ...).
    pub fn collector(&self, extra: &str) -> Collector {
        self.collector_with(&format!("[sink]\nflush_interval_ms = 200\n{extra}"), &[])
    }

    /// Starts a collector with `[server]`, `[clickhouse]` and `[salts]` filled in (the ingest
    /// roles; salts and blocklist refreshed every second), `extra` appended, and extra
    /// environment variables; waits until `/healthz` answers.
    pub fn collector_with(&self, extra: &str, env: &[(&str, &str)]) -> Collector {
        let port = free_port();
        let config = self.dir.path().join(format!("collector-{port}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nshutdown_timeout_ms = 10000\n\
                 [clickhouse]\nurl = \"{url}\"\nuser = \"{ingest}\"\npassword_env = \"WEBSTATS_CH_PASSWORD_INGEST\"\n\
                 database_prefix = \"{prefix}\"\n\
                 [salts]\nrefresh_interval_s = 1\nuser = \"{meta}\"\npassword_env = \"WEBSTATS_CH_PASSWORD_INGEST_META\"\n{extra}",
                url = clickhouse_url(),
                ingest = self.user(store::roles::Role::Ingest),
                meta = self.user(store::roles::Role::IngestMeta),
                prefix = self.prefix,
            ),
        )
        .unwrap();
        let log = self.dir.path().join(format!("collector-{port}.log"));
        let child = Command::new(binary("collector"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "debug")
            .envs(self.passwords.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(env.iter().copied())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).unwrap()))
            .spawn()
            .expect("the collector starts");
        let collector = Collector { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), log };
        collector.wait_until(|c| c.try_get("/healthz").is_some_and(|r| r.0 == 200), "/healthz to answer 200");
        collector
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.users_file());
        let databases = store::Databases::new(&self.prefix).expect("a valid prefix");
        // Views first: a view whose source is gone cannot be dropped on 18.16.
        for db in [databases.ingest(), databases.stage()].into_iter().chain(databases.all()) {
            let _ = sql_as("admin", &admin_password(), &format!("DROP DATABASE IF EXISTS {db}"));
        }
    }
}

/// A running collector process.
pub struct Collector {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
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

    /// POSTs a beacon as `text/plain`, as sendBeacon does.
    pub fn beacon(&self, body: &str, headers: &[(&str, &str)]) -> Reply {
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

    pub fn wait_until(&self, mut done: impl FnMut(&Self) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if done(self) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; collector log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the collector did not stop within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls a SQL count until it reaches `expected` (rows are flushed asynchronously).
pub fn wait_for_count(query: &str, expected: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = sql_u64(query);
        if n >= expected || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
