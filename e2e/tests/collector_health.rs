//! The collector-health dashboard and the alerts on real servers: Debian's Prometheus
//! (scripts/prometheus.sh, config/prometheus.yml) scrapes a collector under a small load, and
//! every panel's PromQL, expanded as Grafana expands it, returns data through Prometheus's HTTP
//! API; promtool checks the alert rules and runs their unit tests.

use std::{
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use e2e::{
    Collector, Install,
    grafana::{self, Range, VarValue, Vars},
};
use serde_json::Value;

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const SCRAPE_S: u64 = 1;

/// A Prometheus of the test's own, stopped when dropped.
struct Prometheus {
    name: String,
    url: String,
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let name = format!("e2e-health-{}", std::process::id());
        let port = e2e::free_port();
        let out = Command::new("bash")
            .arg(e2e::repo_root().join("scripts/prometheus.sh"))
            .args(["start", "--name", &name, "--port", &port.to_string(), "--targets", target])
            .args(["--scrape-interval", &format!("{SCRAPE_S}s")])
            .output()
            .expect("scripts/prometheus.sh runs");
        assert!(out.status.success(), "prometheus.sh start: {}", String::from_utf8_lossy(&out.stderr));
        Self { name, url: format!("http://127.0.0.1:{port}") }
    }

    fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let mut request = e2e::http().get(&format!("{}{path}", self.url));
        for (k, v) in params {
            request = request.query(*k, *v);
        }
        let mut response = request.call().unwrap_or_else(|e| panic!("{path}: {e}"));
        let body = response.body_mut().read_to_string().unwrap();
        let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert_eq!(json["status"], "success", "{path} {params:?}: {body}");
        json["data"].clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(e2e::repo_root().join("scripts/prometheus.sh"))
            .args(["stop", "--name", &self.name])
            .output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(e2e::repo_root().join(".work/prometheus").join(&self.name));
        }
    }
}

/// A small, mixed load: pageviews and events of two sites, a bot, a refused beacon (unknown
/// site) and a dropped one (DNT on a site in `drop` mode), every 50 ms until `stop`.
fn load(c: &Collector, stop: &AtomicBool) {
    let mut i = 0u32;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let ip = format!("198.51.100.{}", i % 200 + 1);
        let send = |body: &str, ua: &str, extra: &[(&str, &str)]| {
            let mut headers = vec![("user-agent", ua), ("x-forwarded-for", ip.as_str())];
            headers.extend_from_slice(extra);
            c.beacon(body, &headers).status
        };
        assert_eq!(send(r#"{"site":"lk","url":"https://lk.example.ru/"}"#, UA, &[]), 202);
        assert_eq!(
            send(r#"{"site":"lk","type":"event","name":"pay","url":"https://lk.example.ru/pay"}"#, UA, &[]),
            202
        );
        assert_eq!(send(r#"{"site":"shop","url":"https://shop.example.ru/"}"#, BOT, &[]), 202);
        assert_eq!(send(r#"{"site":"shop","url":"https://shop.example.ru/"}"#, UA, &[("dnt", "1")]), 202);
        assert_eq!(send(r#"{"site":"nowhere","url":"https://x.example/"}"#, UA, &[]), 403);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_health_panel_has_data_from_a_real_prometheus() {
    let install = Install::new("health");
    let c = install.collector(
        "[[sites]]\nid = \"lk\"\nallowed_hosts = [\"lk.example.ru\"]\n\
         [[sites]]\nid = \"shop\"\nallowed_hosts = [\"shop.example.ru\"]\ndo_not_track = \"drop\"\n",
    );
    c.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
    let prometheus = Prometheus::start(&c.addr.to_string());
    let stop = AtomicBool::new(false);
    let dashboard = grafana::dashboards().into_iter().find(|d| d.uid() == "webstats-collector-health").unwrap();
    /// Stops the load when the checks end, failed ones included.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| load(&c, &stop));
        // Enough scrapes for every rate window, and inserts to have happened between them.
        let started = Instant::now();
        loop {
            let up =
                prometheus.get("/api/v1/query", &[("query", "count_over_time(up{job=\"webstats-collector\"}[1m])")]);
            let scrapes = up["result"][0]["value"][1].as_str().map_or(0.0, |v| v.parse::<f64>().unwrap());
            if scrapes >= 15.0 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "Prometheus did not scrape the collector: {up}");
            std::thread::sleep(Duration::from_millis(500));
        }

        let now_ms =
            i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis())
                .unwrap();
        let range = Range { from_ms: now_ms - 60_000, to_ms: now_ms };
        // The variables first, as Grafana loads them.
        let mut vars = Vars::defaults(&dashboard);
        for name in ["site", "instance"] {
            let variable = dashboard.variable(name).unwrap();
            let definition = variable["definition"].as_str().unwrap();
            let (metric, label) = definition
                .strip_prefix("label_values(")
                .and_then(|d| d.strip_suffix(')'))
                .and_then(|d| d.split_once(", "))
                .unwrap_or_else(|| panic!("{definition}"));
            let values = prometheus.get(&format!("/api/v1/label/{label}/values"), &[("match[]", metric)]);
            let values: Vec<String> =
                values.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
            if name == "site" {
                assert_eq!(values, ["lk", "shop"], "the configured sites");
            } else {
                assert_eq!(values, [c.addr.to_string()]);
            }
            let all = variable["allValue"].as_str().map(str::to_owned);
            vars = vars.set(name, VarValue::All { all_value: all, options: values });
        }
        for site in [VarValue::All { all_value: Some(".*".into()), options: vec![] }, VarValue::Many(vec!["lk".into()])]
        {
            let vars = vars.clone().set("site", site);
            for q in dashboard.queries().iter().filter(|q| !q.panel.is_empty()) {
                let (expr, step) = grafana::expand_promql(q, &vars, range, SCRAPE_S);
                let data = prometheus.get(
                    "/api/v1/query_range",
                    &[
                        ("query", &expr),
                        ("start", &(range.from_ms / 1000).to_string()),
                        ("end", &(range.to_ms / 1000).to_string()),
                        ("step", &step.to_string()),
                    ],
                );
                let series = data["result"].as_array().unwrap();
                assert!(!series.is_empty(), "{}: no data for {expr}", q.origin);
            }
        }
    });
    // The alerts load: Prometheus evaluates them (none fires for a healthy collector).
    let rules = prometheus.get("/api/v1/rules", &[]);
    let names: Vec<&str> =
        rules["groups"][0]["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"WebstatsSpoolGrowing") && names.contains(&"WebstatsBeaconsRefused"), "{names:?}");
    let firing = prometheus.get("/api/v1/alerts", &[]);
    assert_eq!(firing["alerts"], serde_json::json!([]), "a healthy collector raises no alert");
}

#[test]
fn alert_rules_check_and_fire_in_their_unit_tests() {
    let dir = e2e::repo_root().join("dashboards/prometheus");
    for args in [["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]] {
        let out = Command::new("promtool").args(args).current_dir(&dir).output().expect("promtool is installed");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("SUCCESS"), "promtool {args:?}:\n{text}");
    }
    // Each alert has a unit test that expects it to fire.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        let expectations =
            tests.matches(&format!("alertname: {alert}\n        exp_alerts:\n          - exp_labels")).count();
        assert!(expectations >= 1, "{alert} is never expected to fire in alerts_test.yml");
        assert!(
            tests.contains(&format!("alertname: {alert}\n        exp_alerts: []")),
            "{alert} is never expected silent"
        );
    }
}
