//! ClickHouse servers for the tests: the shared one that scripts/test.sh starts (all tests,
//! each under its own database prefix), and private ones that a test starts for itself with
//! scripts/clickhouse.sh, so that it can stop and restart them without disturbing the others.

use std::{
    hash::{BuildHasher, RandomState},
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{admin_password, clickhouse_dir, clickhouse_url, http, repo_root};

/// A ClickHouse server: its URL, run directory and admin password. Cheap to clone; a private
/// server is stopped and its directory removed when the last clone is dropped.
#[derive(Clone)]
pub struct Server(Arc<Inner>);

struct Inner {
    url: String,
    dir: PathBuf,
    admin_password: String,
    private: Option<Private>,
}

/// A server this test process started with scripts/clickhouse.sh.
struct Private {
    name: String,
    http_port: u16,
    tcp_port: u16,
}

/// Prefix of private servers' names (`.work/clickhouse/e2e-<test>-<pid>-<n>`).
const PRIVATE_PREFIX: &str = "e2e-";

impl Server {
    /// The server scripts/test.sh started (from `WEBSTATS_TEST_CLICKHOUSE_*`).
    pub fn shared() -> Server {
        static SHARED: OnceLock<Server> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                Server(Arc::new(Inner {
                    url: clickhouse_url(),
                    dir: clickhouse_dir(),
                    admin_password: admin_password(),
                    private: None,
                }))
            })
            .clone()
    }

    /// Starts a server of the test's own (`scripts/clickhouse.sh start --name e2e-<test>-...`)
    /// on ports outside the ephemeral range, so that no client socket or `free_port()` takes
    /// them while it is stopped. Servers left behind by test processes that died are stopped
    /// and removed first.
    pub fn private(test: &str) -> Server {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        reap_orphans();
        let name = format!("{PRIVATE_PREFIX}{test}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let dir = clickhouse_root().join(&name);
        let mut failures = Vec::new();
        for _ in 0..3 {
            let (http_port, tcp_port) = (quiet_port(), quiet_port());
            if http_port == tcp_port {
                continue;
            }
            match script(&[
                "start",
                "--name",
                &name,
                "--http-port",
                &http_port.to_string(),
                "--tcp-port",
                &tcp_port.to_string(),
            ]) {
                Ok(_) => {
                    let secrets =
                        std::fs::read_to_string(dir.join("secrets.env")).expect("clickhouse.sh wrote secrets.env");
                    let admin_password = secrets
                        .lines()
                        .find_map(|l| l.strip_prefix("WEBSTATS_CH_PASSWORD_ADMIN="))
                        .expect("secrets.env holds WEBSTATS_CH_PASSWORD_ADMIN")
                        .trim()
                        .to_owned();
                    return Server(Arc::new(Inner {
                        url: format!("http://127.0.0.1:{http_port}"),
                        dir,
                        admin_password,
                        private: Some(Private { name, http_port, tcp_port }),
                    }));
                }
                // Most likely a port taken in the meantime: try others.
                Err(error) => failures.push(error),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("could not start a private ClickHouse server {name}:\n{}", failures.join("\n---\n"));
    }

    /// A server some other owner started and stops (a cluster node, [`crate::cluster`]).
    pub(crate) fn attached(url: String, dir: PathBuf, admin_password: String) -> Server {
        Server(Arc::new(Inner { url, dir, admin_password, private: None }))
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// The run directory: `data/`, `log/`, `users.d/`, `secrets.env`.
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// Where role users of installations go; the server reloads it within a few seconds.
    pub fn users_dir(&self) -> PathBuf {
        self.0.dir.join("users.d")
    }

    pub fn admin_password(&self) -> &str {
        &self.0.admin_password
    }

    pub fn is_private(&self) -> bool {
        self.0.private.is_some()
    }

    fn private_or_panic(&self, what: &str) -> &Private {
        self.0.private.as_ref().unwrap_or_else(|| panic!("only a private server can be {what}; this is the shared one"))
    }

    /// Stops a private server for real (`clickhouse.sh stop`: SIGTERM, waits for the exit).
    pub fn stop(&self) {
        let private = self.private_or_panic("stopped");
        let started = Instant::now();
        if let Err(error) = script(&["stop", "--name", &private.name]) {
            panic!("clickhouse.sh stop {} failed: {error}", private.name);
        }
        eprintln!("[server] {} stopped in {:.1} s", private.name, started.elapsed().as_secs_f64());
    }

    /// Starts a stopped private server again on the same ports and data directory, and waits
    /// until it answers queries.
    pub fn start(&self) {
        let p = self.private_or_panic("started");
        let (http_port, tcp_port) = (p.http_port.to_string(), p.tcp_port.to_string());
        // The script refuses ports in use; a socket of the old server may linger a moment.
        let started = Instant::now();
        let deadline = started + Duration::from_secs(30);
        let mut retries = 0;
        loop {
            match script(&["start", "--name", &p.name, "--http-port", &http_port, "--tcp-port", &tcp_port]) {
                Ok(_) => break,
                Err(error) if Instant::now() > deadline => panic!("clickhouse.sh start {} failed: {error}", p.name),
                Err(error) => {
                    retries += 1;
                    if retries == 1 {
                        eprintln!("[server] {} did not start yet, retrying: {error}", p.name);
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.answers() {
            assert!(Instant::now() < deadline, "{} did not answer after starting", p.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether `SELECT 1` as admin succeeds now.
    pub fn answers(&self) -> bool {
        matches!(self.try_sql_as("admin", self.admin_password(), "SELECT 1"), Ok(Ok(body)) if body.trim() == "1")
    }

    /// Runs SQL as `user`: `Err` when nothing answers; otherwise the body, or the server's
    /// error message.
    pub fn try_sql_as(&self, user: &str, password: &str, query: &str) -> Result<Result<String, String>, String> {
        self.try_sql_with(user, password, query, "")
    }

    /// [`Self::try_sql_as`] with settings as URL parameters (`insert_distributed_sync=1`).
    pub fn try_sql_with(
        &self,
        user: &str,
        password: &str,
        query: &str,
        settings: &str,
    ) -> Result<Result<String, String>, String> {
        let mut response = http()
            .post(&format!("{}/?{settings}", self.url()))
            .header("X-ClickHouse-User", user)
            .header("X-ClickHouse-Key", password)
            .send(query)
            .map_err(|e| e.to_string())?;
        let body = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok(if response.status() == 200 { Ok(body) } else { Err(body) })
    }

    /// Runs SQL as `user`: the body, or the server's error message. Panics if nothing answers.
    pub fn sql_as(&self, user: &str, password: &str, query: &str) -> Result<String, String> {
        self.try_sql_as(user, password, query)
            .unwrap_or_else(|e| panic!("ClickHouse at {} does not answer: {e}", self.url()))
    }

    /// Runs SQL as the admin; returns the body, panicking with the server's message on error.
    pub fn sql(&self, query: &str) -> String {
        self.sql_as("admin", self.admin_password(), query).unwrap_or_else(|e| panic!("ClickHouse refused {query}: {e}"))
    }

    /// Runs a query with `FORMAT JSONEachRow` appended and parses each row.
    pub fn sql_rows(&self, query: &str) -> Vec<serde_json::Value> {
        self.sql(&format!("{query} FORMAT JSONEachRow"))
            .lines()
            .map(|line| serde_json::from_str(line).expect("JSONEachRow line"))
            .collect()
    }

    /// A single number from a query.
    pub fn sql_u64(&self, query: &str) -> u64 {
        self.sql(query).trim().parse().unwrap_or_else(|e| panic!("{query} did not return a number: {e}"))
    }

    /// Polls a SQL count until it reaches `expected` or 30 s pass; returns the last count.
    pub fn wait_for_count(&self, query: &str, expected: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = self.sql_u64(query);
            if n >= expected || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Inner {
    /// Stops a private server and removes its directory, or, when the test failed, moves it
    /// to `.work/e2e-failed/` for its logs.
    fn drop(&mut self) {
        if let Some(private) = &self.private {
            if let Err(error) = script(&["stop", "--name", &private.name]) {
                eprintln!("warning: could not stop {}: {error}", private.name);
            }
            let kept = repo_root().join(".work/e2e-failed").join(&private.name);
            if std::thread::panicking()
                && std::fs::create_dir_all(kept.parent().unwrap()).is_ok()
                && std::fs::rename(&self.dir, &kept).is_ok()
            {
                eprintln!("the failed test's ClickHouse directory (logs in log/) is kept: {}", kept.display());
            } else {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// `.work/clickhouse`, where scripts/clickhouse.sh keeps each named server.
fn clickhouse_root() -> PathBuf {
    repo_root().join(".work/clickhouse")
}

/// Runs scripts/clickhouse.sh; its stdout, or everything it printed on failure.
fn script(args: &[&str]) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/clickhouse.sh"))
        .args(args)
        .output()
        .map_err(|e| format!("cannot run scripts/clickhouse.sh: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("clickhouse.sh {args:?}: {}\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr)))
    }
}

/// A free port in 20000..32000: below Linux's ephemeral range (32768..60999), where the
/// kernel picks client ports and `free_port()` answers, so that a stopped private server
/// finds its ports free again when it restarts.
pub(crate) fn quiet_port() -> u16 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    for _ in 0..1000 {
        let random =
            RandomState::new().hash_one((Instant::now(), std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        let port = 20_000 + (random % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}

/// Stops and removes private servers whose test process is gone (killed before its Drop).
fn reap_orphans() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(entries) = std::fs::read_dir(clickhouse_root()) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(PRIVATE_PREFIX) else { continue };
            // e2e-<test>-<pid>-<n>
            let mut parts = rest.rsplit('-');
            let (Some(_n), Some(pid)) = (parts.next(), parts.next().and_then(|p| p.parse::<u32>().ok())) else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = script(&["stop", "--name", &name]);
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
}
