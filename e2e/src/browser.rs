//! A real browser for the snippet's tests: headless Chromium driven over WebDriver
//! (chromedriver, through `fantoccini`), and [`Pages`], a tiny HTTP server for the test
//! site's pages.
//!
//! Needs `chromedriver` and Chromium (Debian: `apt-get install chromium chromium-driver`);
//! `WEBSTATS_CHROMEDRIVER` and `WEBSTATS_CHROMIUM` override where they are looked for.
//!
//! Everything here is bounded: each WebDriver command has [`COMMAND_TIMEOUT`], each wait the
//! deadline it is given. [`Browser`]'s drop ends the session and kills chromedriver and every
//! process under it (Chromium and its helpers) by pid, also when the test panicked.

use std::{
    collections::HashSet,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, cookies::Cookie};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// The most one WebDriver command (a navigation included) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Chromium's switches: no sandbox (containers, root), no GPU, none of the browser's own
/// traffic (component updates, field trials, first-run pages) next to the test's, and an
/// ordinary Chrome's User-Agent (headless Chromium's says `HeadlessChrome`, a bot pattern).
const CHROMIUM_ARGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
];

/// `$var` if set, else the first of `names` that is a file: an absolute name as it is, others
/// looked up on `PATH`.
fn find_program(var: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for name in names {
        if Path::new(name).is_absolute() {
            if Path::new(name).is_file() {
                return PathBuf::from(name);
            }
            continue;
        }
        if let Some(found) = dirs.iter().map(|dir| dir.join(name)).find(|c| c.is_file()) {
            return found;
        }
    }
    panic!(
        "none of {names:?} is there (set {var} to override): the browser tests need Chromium and chromedriver \
         (Debian: apt-get install chromium chromium-driver)"
    )
}

/// Where Chromium is: Debian's binary itself before its `/usr/bin/chromium` wrapper, which
/// adds the flags of `/etc/chromium.d` to the ones given here.
const CHROMIUM: [&str; 4] = ["/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome"];

/// A headless Chromium session. Synchronous, like the rest of the harness: it owns the tokio
/// runtime that `fantoccini` runs on.
pub struct Browser {
    client: Option<Client>,
    runtime: tokio::runtime::Runtime,
    driver: Child,
    /// chromedriver's URL.
    driver_url: String,
    driver_log: PathBuf,
    /// The Chromium profile and chromedriver's log; kept when the test fails.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a Chromium session through it, with `hosts`
    /// resolved to 127.0.0.1 (so that a test page is served from a real-looking host name,
    /// not `localhost`).
    pub fn start(hosts: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let driver_log = dir.path().join("chromedriver.log");
        let port = crate::free_port();
        let driver = Command::new(find_program("WEBSTATS_CHROMEDRIVER", &["chromedriver"]))
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", driver_log.display()))
            // Chromium's crash database and caches go to the temporary folder too, not $HOME.
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let driver_url = format!("http://127.0.0.1:{port}");
        let mut browser = Browser { client: None, runtime, driver, driver_url, driver_log, dir };
        browser.wait_for_driver();

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        if !hosts.is_empty() {
            let rules: Vec<String> = hosts.iter().map(|h| format!("MAP {h} 127.0.0.1")).collect();
            args.push(format!("--host-resolver-rules={}", rules.join(",")));
        }
        args.push(format!("--user-data-dir={}", browser.dir.path().join("profile").display()));
        let capabilities = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "pageLoad": 15_000, "script": 10_000, "implicit": 0 },
            "goog:chromeOptions": {
                "binary": find_program("WEBSTATS_CHROMIUM", &CHROMIUM),
                "args": args,
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        let connect = async {
            ClientBuilder::new(HttpConnector::new()).capabilities(capabilities).connect(&browser.driver_url).await
        };
        let client =
            match browser.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(30), connect).await }) {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => panic!("no Chromium session: {e}\nchromedriver log:\n{}", browser.driver_log_tail()),
                Err(_) => panic!("no Chromium session within 30 s\nchromedriver log:\n{}", browser.driver_log_tail()),
            };
        browser.client = Some(client);
        browser
    }

    /// Polls chromedriver's `/status` until it says it is ready (10 s at most).
    fn wait_for_driver(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        loop {
            if let Some(status) = self.driver.try_wait().unwrap() {
                panic!("chromedriver exited ({status}); its log:\n{}", self.driver_log_tail());
            }
            let ready = agent
                .get(&format!("{}/status", self.driver_url))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .and_then(|body| serde_json::from_str::<Value>(&body).ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver was not ready within 10 s; log:\n{}",
                self.driver_log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last 4 KB of chromedriver's log: the last commands and their answers.
    pub fn driver_log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.driver_log).unwrap_or_default();
        let start = text.len().saturating_sub(4 * 1024);
        let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        text[start..].to_owned()
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    /// Runs one WebDriver command to completion within [`COMMAND_TIMEOUT`]; panics with
    /// `what` and the error otherwise.
    fn run<T, E: std::fmt::Display>(&self, what: &str, command: impl Future<Output = Result<T, E>>) -> T {
        match self.runtime.block_on(async { tokio::time::timeout(COMMAND_TIMEOUT, command).await }) {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => panic!("{what}: {e}"),
            Err(_) => panic!("{what}: no answer within {COMMAND_TIMEOUT:?}"),
        }
    }

    /// Navigates and waits for the page's `load` event.
    pub fn goto(&self, url: &str) {
        self.run(&format!("goto {url}"), self.client().goto(url));
    }

    pub fn current_url(&self) -> String {
        self.run("current URL", self.client().current_url()).to_string()
    }

    /// Runs `script` (a function body: `return` gives the result) in the page.
    pub fn execute(&self, script: &str) -> Value {
        self.run(&format!("execute {script:?}"), self.client().execute(script, vec![]))
    }

    /// Clicks the element that `css` selects, as a user would (real input events).
    pub fn click(&self, css: &str) {
        let element = self.run(&format!("find {css}"), self.client().find(Locator::Css(css)));
        self.run(&format!("click {css}"), element.click());
    }

    /// Polls the JavaScript expression `condition` until it is truthy, for `within` at most;
    /// panics naming `what` otherwise.
    pub fn wait_for(&self, condition: &str, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        let script = format!("return !!({condition});");
        loop {
            if self.execute(&script) == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what} ({condition})");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The cookie `name` as the browser holds it for the current page, if any.
    pub fn cookie(&self, name: &str) -> Option<Cookie<'static>> {
        let cookies = self.run("get cookies", self.client().get_all_cookies());
        cookies.into_iter().find(|c| c.name() == name)
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver (`goog/cdp/execute`), for
    /// what WebDriver does not tell, and returns its result.
    pub fn cdp(&self, command: &str, params: Value) -> Value {
        let session = self.run("session id", self.client().session_id()).expect("a session");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(COMMAND_TIMEOUT))
            .build()
            .into();
        let url = format!("{}/session/{session}/goog/cdp/execute", self.driver_url);
        let body = json!({ "cmd": command, "params": params }).to_string();
        let mut response = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .unwrap_or_else(|e| panic!("CDP {command}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let reply: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("CDP {command}: {e}: {text}"));
        assert_eq!(status, 200, "CDP {command}: {reply}");
        reply["value"].clone()
    }

    /// The session's User-Agent.
    pub fn user_agent(&self) -> String {
        self.execute("return navigator.userAgent;").as_str().unwrap_or_default().to_owned()
    }

    /// The browser's version, as the session reports it.
    pub fn version(&self) -> String {
        let capabilities = self.client().capabilities().cloned().unwrap_or_default();
        capabilities.get("browserVersion").and_then(Value::as_str).unwrap_or("?").to_owned()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A process: its pid and its start time (field 22 of `/proc/<pid>/stat`), which tells it
/// from a later process that got the same pid.
type Process = (u32, u64);

/// `(ppid, start time)` of a running process.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ... starttime ...": comm may hold spaces and parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// `root` and every process under it, parents first, then the processes that left the tree
/// but name `folder` on their command line (Chromium's crash handler daemonises).
fn processes(root: u32, folder: &Path) -> Vec<Process> {
    let marker = folder.as_os_str().as_encoded_bytes();
    let mut all: Vec<(Process, u32, bool)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Some((ppid, start)) = stat(pid) else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        all.push(((pid, start), ppid, cmdline.windows(marker.len()).any(|w| w == marker)));
    }
    let mut tree: Vec<Process> = all.iter().filter(|(p, _, _)| p.0 == root).map(|(p, _, _)| *p).collect();
    let mut seen: HashSet<u32> = tree.iter().map(|p| p.0).collect();
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i].0;
        for (process, ppid, _) in &all {
            if *ppid == parent && seen.insert(process.0) {
                tree.push(*process);
            }
        }
        i += 1;
    }
    tree.extend(all.iter().filter(|(p, _, marked)| *marked && seen.insert(p.0)).map(|(p, _, _)| *p));
    tree
}

impl Drop for Browser {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        // Whatever runs under chromedriver now (Chromium, its zygotes and renderers), and
        // Chromium's crash handlers.
        let tree = processes(self.driver.id(), self.dir.path());
        // Ending the session makes chromedriver close Chromium itself.
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), client.close()).await });
        }
        // Then kill what is left, by pid, children first: a process that outlived its parent
        // would otherwise leak. A pid whose start time changed is another process now.
        for &(pid, start) in tree.iter().rev().filter(|(pid, _)| *pid != self.driver.id()) {
            if stat(pid).is_some_and(|(_, now)| now == start) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if failed {
            self.dir.disable_cleanup(true);
            eprintln!(
                "the failed test's browser folder (chromedriver.log, profile) is kept: {}",
                self.dir.path().display()
            );
        }
    }
}

type Handler = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A tiny HTTP/1.1 server on 127.0.0.1 for test pages: `handler` gets each GET's target
/// (path and query) and returns the HTML to serve, or `None` for a 404. Every response is
/// `no-store` and closes its connection. Stops on drop.
pub struct Pages {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Pages {
    pub fn serve(handler: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (handler, requests) = (handler.clone(), requests.clone());
                            // One thread per connection: a browser keeps idle ones open.
                            std::thread::spawn(move || answer(stream, &*handler, &requests));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Pages { addr, stop, requests, thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The request lines served so far (`GET /path HTTP/1.1`), in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn answer(mut stream: TcpStream, handler: &Handler, requests: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let line = head.lines().next().unwrap_or_default().to_owned();
    requests.lock().unwrap().push(line.clone());
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let (status, body) = match (method, handler(target)) {
        ("GET", Some(html)) => ("200 OK", html),
        ("GET", None) => ("404 Not Found", "not found".to_owned()),
        _ => ("405 Method Not Allowed", String::new()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

impl Drop for Pages {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
