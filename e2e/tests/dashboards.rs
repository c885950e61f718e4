//! The Grafana dashboards of dashboards/grafana/ and their provisioning: linted, then every
//! ClickHouse panel's and variable's SQL expanded as Grafana and the ClickHouse plugin expand
//! it (e2e::grafana names the versions followed), sent as the plugin sends it, as the data
//! source's user, to ClickHouse 18.16 over seeded data with known answers.

use std::collections::{BTreeMap, BTreeSet};

use e2e::{
    Install,
    grafana::{self, Query, Range, VarValue, Vars},
    seed::{self, Beacon},
};
use serde_json::{Value, json};
use store::roles::Role;

#[test]
fn every_dashboard_keeps_the_conventions() {
    let dashboards = grafana::dashboards();
    assert_eq!(dashboards.len(), 3, "audience, troubleshooting, collector health");
    let mut uids = BTreeSet::new();
    let macro_pattern = regex::Regex::new(r"\$__(\w+)").unwrap();
    for d in &dashboards {
        let uid = d.uid();
        let text = std::fs::read_to_string(&d.file).unwrap();
        assert!(uids.insert(uid.to_owned()), "uid {uid} twice");
        assert_eq!(d.json["schemaVersion"], 41, "{uid}");
        assert!(!text.contains("__inputs"), "{uid}: exported for sharing, not provisioning");
        assert_eq!(d.json["editable"], false, "{uid}: provisioned dashboards are not edited in the UI");
        assert!(d.json["tags"].as_array().unwrap().contains(&json!("webstats")), "{uid}: the shared tag");
        let links = d.json["links"].as_array().unwrap();
        assert!(
            links
                .iter()
                .any(|l| l["type"] == "dashboards" && l["tags"] == json!(["webstats"]) && l["includeVars"] == true),
            "{uid}: links to the other dashboards, keeping the variables"
        );

        let plugin = d.datasource_type();
        let datasource = d.variable("datasource").expect("a datasource variable");
        assert_eq!(datasource["type"], "datasource");
        assert!(d.variable("site").is_some(), "{uid}: a site variable");
        for v in d.variables().into_iter().filter(|v| v["type"] == "query") {
            assert_eq!(v["refresh"], 2, "{uid}: variable {} refreshes on time-range change", v["name"]);
            assert_eq!(v["datasource"]["uid"], "${datasource}", "{uid}: variable {}", v["name"]);
        }

        // Ids unique, rows expanded (their panels follow them), every panel explained.
        let mut ids = BTreeSet::new();
        for row in d.rows() {
            assert!(ids.insert(row["id"].as_u64().unwrap()), "{uid}: id {} twice", row["id"]);
            assert_eq!(row["collapsed"], false, "{uid}: row {}", row["title"]);
        }
        assert!(!d.rows().is_empty(), "{uid}: panels are grouped in rows");
        let panels = d.panels();
        let by_id: BTreeMap<u64, &Value> = panels.iter().map(|p| (p["id"].as_u64().unwrap(), *p)).collect();
        for p in &panels {
            let title = p["title"].as_str().unwrap();
            assert!(ids.insert(p["id"].as_u64().unwrap()), "{uid}: id {} twice", p["id"]);
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default();
            assert!(!unit.is_empty(), "{uid} / {title}: a unit");
            let description = p["description"].as_str().unwrap_or_default();
            assert!(description.len() > 30, "{uid} / {title}: a description of what is counted");
            if uid == "webstats-audience" && title != "Current visitors" {
                assert!(
                    description.contains("fewer than k distinct visitors"),
                    "{uid} / {title}: says groups under k are hidden"
                );
            }
            if grafana::is_dashboard_source(&p["datasource"]) {
                // Shows another panel's result: that panel queries through the variable.
                let source = p["targets"][0]["panelId"].as_u64().expect("a panelId");
                let source = by_id.get(&source).unwrap_or_else(|| panic!("{uid} / {title}: panel {source} is missing"));
                assert_eq!(source["datasource"]["uid"], "${datasource}", "{uid} / {title}");
                continue;
            }
            assert_eq!(p["datasource"], json!({"type": plugin, "uid": "${datasource}"}), "{uid} / {title}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{uid} / {title}: a query");
            for t in targets {
                assert_eq!(t["datasource"], p["datasource"], "{uid} / {title}: target through the variable");
                if plugin == grafana::CLICKHOUSE {
                    assert_eq!(t["editorType"], "sql", "{uid} / {title}");
                    let format = t["format"].as_u64().expect("an explicit format");
                    assert_eq!(
                        format == 0,
                        p["type"] == "timeseries" || t["rawSql"].as_str().unwrap().contains("AS time,"),
                        "{uid} / {title}: format"
                    );
                }
            }
        }
        for q in d.queries() {
            assert!(!q.text.trim().is_empty(), "{}: empty query", q.origin);
            if plugin == grafana::CLICKHOUSE {
                for m in macro_pattern.captures_iter(&q.text) {
                    assert!(grafana::ALLOWED_MACROS.contains(&&m[1]), "{}: $__{} is not allowed", q.origin, &m[1]);
                }
                assert!(!q.text.contains(';') && !q.text.contains("--"), "{}: one statement, no comments", q.origin);
            }
        }
    }

    // Each dashboard's data source is provisioned, with its password from the environment.
    let datasources = grafana::provisioned_datasources();
    for d in &dashboards {
        let default = d.variable("datasource").unwrap()["current"]["value"].as_str().unwrap().to_owned();
        let ds = datasources.iter().find(|ds| ds["uid"] == default.as_str());
        let ds = ds.unwrap_or_else(|| panic!("{}: data source {default} is not provisioned", d.uid()));
        assert_eq!(ds["type"], d.datasource_type(), "{}", d.uid());
        if d.datasource_type() == grafana::CLICKHOUSE {
            let expected = if d.uid() == "webstats-audience" { Role::Analyst } else { Role::Sre };
            assert_eq!(d.role(), expected, "{}", d.uid());
        }
    }
    for ds in datasources.iter().filter(|ds| ds["type"] == grafana::CLICKHOUSE) {
        assert_eq!(ds["jsonData"]["protocol"], "http", "{}", ds["uid"]);
        let password = ds["secureJsonData"]["password"].as_str().unwrap();
        assert!(password.starts_with("${WEBSTATS_CH_PASSWORD_") && password.ends_with('}'), "{}", ds["uid"]);
    }
    let file = e2e::repo_root().join("dashboards/provisioning/dashboards/webstats.yaml");
    let provider: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(provider["providers"][0]["allowUiUpdates"], false);
    assert_eq!(provider["providers"][0]["folder"], "webstats");
}

/// A panel's rows as the plugin's user gets them; the query also goes once in the plugin's own
/// format (Native), so a refusal of anything the plugin sends shows here.
fn run(install: &Install, role: Role, sql: &str, origin: &str) -> Vec<Value> {
    let (url, user, password) = (install.server().url(), install.user(role), install.password(role));
    grafana::plugin_request(url, &user, &password, sql, "Native")
        .unwrap_or_else(|e| panic!("{origin} as {}:\n{sql}\n--> {e}", role.name()));
    let body = grafana::plugin_request(url, &user, &password, sql, "JSON").unwrap();
    serde_json::from_slice::<Value>(&body).unwrap()["data"].as_array().unwrap().clone()
}

fn expand(q: &Query, vars: &Vars, range: Range) -> String {
    grafana::expand_sql(q, vars, range).unwrap_or_else(|e| panic!("{}: {e}", q.origin))
}

/// Every ClickHouse query of every dashboard, run for `range` with `site`; results by
/// `"<uid> / <panel title>"` (variables: `"<uid> / variable <name>"`).
fn run_all(install: &Install, range: Range, site: VarValue) -> BTreeMap<String, Vec<Value>> {
    let mut results = BTreeMap::new();
    for d in grafana::dashboards().iter().filter(|d| d.datasource_type() == grafana::CLICKHOUSE) {
        let vars = Vars::defaults(d).one("prefix", &install.prefix).set("site", site.clone());
        let role = d.role();
        for q in d.queries() {
            let sql = expand(&q, &vars, range);
            let key = if q.panel.is_empty() { q.origin.clone() } else { format!("{} / {}", d.uid(), q.panel) };
            results.insert(key, run(install, role, &sql, &q.origin));
        }
    }
    results
}

fn n(row: &Value, column: &str) -> f64 {
    seed::number(&row[column]).unwrap_or_else(|| panic!("{column} of {row}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// One day of the audience, per visitor (`S1` ... `S8` in the comments below):
/// S1 ×2: / from yandex.ru, /bills 5 min later, a `pay` event a minute after: 2 views, 360 s.
/// S2 ×2: / from www.google.co.uk: a bounce.            S3 ×2: / from m.vk.com: a bounce.
/// S4 ×2: /bills from a newsletter e-mail, / 10 min later: 2 views, 600 s.
/// S5 ×2: / directly, /bills 40 min later from the site itself: two visits, two bounces.
/// S6 ×2: / from a Yandex cpc campaign: a bounce.  S7 ×2: / from example.org, /help a minute
/// later: 2 views, 60 s.  S8 ×1: /contacts from t.me: a bounce.  Plus 2 anonymous views of /.
fn audience(day: u16) -> Vec<Beacon> {
    let mut b = Vec::new();
    let pv = |hms, v, path| Beacon::pageview("lk", day, hms, v, path);
    for v in [1, 2] {
        b.push(pv("10:00:00", v, "/").referrer("yandex.ru"));
        b.push(pv("10:05:00", v, "/bills").referrer("lk.example.ru"));
        b.push(
            Beacon::event("lk", day, "10:06:00", v, "/bills", "pay")
                .with("prop_keys", json!(["method"]))
                .with("prop_values", json!(["card"])),
        );
    }
    for v in [3, 4] {
        b.push(pv("10:30:00", v, "/").referrer("www.google.co.uk"));
    }
    for v in [5, 6] {
        b.push(pv("11:00:00", v, "/").referrer("m.vk.com"));
    }
    for v in [7, 8] {
        b.push(pv("11:00:00", v, "/bills").utm("newsletter", "email"));
        b.push(pv("11:10:00", v, "/").referrer("lk.example.ru"));
    }
    for v in [9, 10] {
        b.push(pv("12:00:00", v, "/"));
        b.push(pv("12:40:00", v, "/bills").referrer("lk.example.ru"));
    }
    for v in [11, 12] {
        b.push(pv("12:00:00", v, "/").utm("yandex", "cpc"));
    }
    for v in [13, 14] {
        b.push(pv("13:00:00", v, "/").referrer("example.org"));
        b.push(pv("13:01:00", v, "/help").referrer("lk.example.ru"));
    }
    b.push(pv("13:00:00", 15, "/contacts").referrer("t.me"));
    b.extend([pv("14:00:00", 0, "/"), pv("14:00:00", 0, "/")]);
    b.iter().map(|beacon| beacon.clone().with("country", json!("RU")).with("browser", json!("Chrome"))).collect()
}

/// One day of the troubleshooting store: 10 browsers' pageviews from one network, 2 bot hits
/// from another, 3 errors, 8 timing beacons.
fn troubleshooting(day: u16) -> Vec<Beacon> {
    let mut b = Vec::new();
    let at = |kind, v| {
        Beacon::new(kind, "lk", day, "10:00:00", v, "/")
            .with("ip_id", json!(v))
            .with("asn", json!(12389))
            .with("as_org", json!("Rostelecom"))
            .with("browser", json!("Chrome"))
            .with("os", json!("Windows 10"))
            .with("device", json!("pc"))
            .with("country", json!("RU"))
    };
    for v in 1..=10 {
        b.push(at("pageview", v));
    }
    for v in [101, 102] {
        b.push(
            at("pageview", v)
                .with("is_bot", json!(1))
                .with("bot_reason", json!("list:Googlebot\\/"))
                .with("user_agent", json!("Googlebot/2.1"))
                .with("asn", json!(15169))
                .with("as_org", json!("Google")),
        );
    }
    for (v, message, line) in
        [(1, "TypeError: x is undefined", 10), (2, "TypeError: x is undefined", 10), (3, "ReferenceError: y", 20)]
    {
        b.push(
            at("error", v)
                .with("error_message", json!(message))
                .with("error_source", json!("https://lk.example.ru/app.js"))
                .with("error_line", json!(line)),
        );
    }
    for v in 1..=8u64 {
        b.push(
            at("timing", v)
                .with("ttfb_ms", json!(100 * v))
                .with("fcp_ms", json!(1000 + 100 * v))
                .with("lcp_ms", json!(2000 + 100 * v))
                .with("inp_ms", json!(50 * v))
                .with("cls", json!(0.01 * v as f64)),
        );
    }
    b
}

/// Seeds `install` with the audience and troubleshooting rows the panels' answers are known
/// for (k = 2, so that two visitors make a group) and computes the rollups; the seeded day.
fn seed_and_roll_up(install: &Install) -> u16 {
    install.configure_aggregator("[privacy]\nmin_group_size = 2\n");
    let day = seed::today() - 1;
    seed::insert(install, &install.audience(), &audience(day));
    // The previous period (the day before): two bounces.
    seed::insert(
        install,
        &install.audience(),
        &[Beacon::pageview("lk", day - 1, "09:00:00", 21, "/"), Beacon::pageview("lk", day - 1, "09:00:00", 22, "/")],
    );
    seed::insert(install, &install.troubleshooting(), &troubleshooting(day));
    // Three visitors of another site a minute ago, for the current visitors.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 60;
    let live: Vec<Beacon> = (31..=33)
        .map(|v| {
            let (d, s) = ((now / 86_400) as u16, now % 86_400);
            Beacon::pageview("live", d, &format!("{}:{}:{}", s / 3600, s / 60 % 60, s % 60), v, "/")
        })
        .collect();
    seed::insert(install, &install.audience(), &live);
    // On a cluster an insert reaches one replica per shard; the rollups read any replica.
    install.sync_replicas();
    let out = install.aggregator(&["rollups", "--days", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    install.sync_replicas();
    day
}

#[test]
fn panels_answer_exactly_on_seeded_data() {
    let install = Install::new("dashboards");
    let day = seed_and_roll_up(&install);

    let r = run_all(&install, Range::days(day, day), VarValue::One("lk".into()));
    let panel = |key: &str| r.get(key).unwrap_or_else(|| panic!("no panel {key}; have {:?}", r.keys()));

    // Overview: two points, the previous day then this one.
    let kpi = panel("webstats-audience / Visitors");
    assert_eq!(kpi.len(), 2, "{kpi:?}");
    let (prev, cur) = (&kpi[0], &kpi[1]);
    assert_eq!((n(cur, "Visitors"), n(cur, "Visits"), n(cur, "Pageviews")), (15.0, 17.0, 25.0));
    assert!(close(n(cur, "Views per visit"), 23.0 / 17.0), "{cur}");
    assert!(close(n(cur, "Bounce rate"), 11.0 / 17.0), "{cur}");
    assert!(close(n(cur, "Visit duration"), 2040.0 / 17.0), "{cur}");
    assert_eq!((n(prev, "Visitors"), n(prev, "Visits"), n(prev, "Bounce rate")), (2.0, 2.0, 1.0));
    assert!(prev["time"].as_str().unwrap() < cur["time"].as_str().unwrap());

    // The trend of one day is hourly: visits by the hour they start.
    let trend: Vec<(String, f64)> = panel("webstats-audience / Trend")
        .iter()
        .map(|p| (p["time"].as_str().unwrap()[11..13].to_owned(), n(p, "Visits")))
        .collect();
    let hours: Vec<(&str, f64)> = trend.iter().map(|(h, v)| (h.as_str(), *v)).collect();
    assert_eq!(hours, [("10", 4.0), ("11", 4.0), ("12", 6.0), ("13", 3.0)], "14:00 has anonymous views only");

    // Pages: /contacts (one visitor) is hidden.
    let rows = |key: &str, columns: &[&str]| -> Vec<Vec<String>> {
        panel(key)
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|c| match &row[*c] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .collect()
    };
    assert_eq!(
        rows("webstats-audience / Top pages", &["Page", "Visitors", "Pageviews"]),
        [["/", "14", "16"], ["/bills", "6", "6"], ["/help", "2", "2"]]
    );
    let entries = panel("webstats-audience / Entry pages");
    assert_eq!(rows("webstats-audience / Entry pages", &["Page", "Entries"]), [["/", "12"], ["/bills", "4"]]);
    assert!(close(n(&entries[0], "Bounce rate"), 8.0 / 12.0) && close(n(&entries[1], "Bounce rate"), 0.5));
    let exits = panel("webstats-audience / Exit pages");
    assert_eq!(
        rows("webstats-audience / Exit pages", &["Page", "Exits"]),
        [["/", "10"], ["/bills", "4"], ["/help", "2"]]
    );
    assert!(close(n(&exits[0], "Exit rate"), 10.0 / 16.0) && close(n(&exits[2], "Exit rate"), 1.0));

    // Channels: every rule of the table, each with its visitors, visits and bounce rate.
    assert_eq!(
        rows("webstats-audience / Channels", &["Channel", "Visitors", "Visits", "Bounce rate", "Visit duration"]),
        [
            ["Organic search", "4", "4", "0.5", "180"],
            ["Social", "3", "3", "1", "0"],
            ["Direct", "2", "2", "1", "0"],
            ["Email", "2", "2", "0", "600"],
            ["Internal", "2", "2", "1", "0"],
            ["Paid search", "2", "2", "1", "0"],
            ["Referral", "2", "2", "0", "60"],
        ]
    );
    assert_eq!(
        rows("webstats-audience / Referrers", &["Referrer", "Visits"]),
        [
            ["example.org", "2"],
            ["lk.example.ru", "2"],
            ["m.vk.com", "2"],
            ["www.google.co.uk", "2"],
            ["yandex.ru", "2"]
        ],
        "t.me has one visitor"
    );
    assert_eq!(
        rows("webstats-audience / Campaigns", &["Source", "Medium", "Visits"]),
        [["newsletter", "email", "2"], ["yandex", "cpc", "2"]]
    );
    assert_eq!(rows("webstats-audience / Countries", &["Country", "Visitors", "Visits"]), [["RU", "15", "17"]]);
    let events = panel("webstats-audience / Events");
    assert_eq!(rows("webstats-audience / Events", &["Event", "Events", "Visitors"]), [["pay", "2", "2"]]);
    assert!(close(n(&events[0], "Conversion rate"), 2.0 / 15.0));
    assert_eq!(
        rows("webstats-audience / Event properties", &["Event", "Property", "Value", "Events"]),
        [["pay", "method", "card", "2"]]
    );
    assert_eq!(rows("webstats-audience / variable site", &["site"]), [["lk"]]);
    assert_eq!(n(&panel("webstats-audience / Current visitors")[0], "Current visitors"), 0.0, "none on lk");

    // One panel of each troubleshooting row.
    assert!(close(n(&panel("webstats-troubleshooting / Bot share")[0], "Bot share"), 2.0 / 23.0));
    assert_eq!(
        rows("webstats-troubleshooting / Top bot User-Agents", &["User-Agent", "Reason", "Bot", "Beacons"]),
        [["Googlebot/2.1", "list:Googlebot\\/", "1", "2"]]
    );
    assert_eq!(
        rows("webstats-troubleshooting / Top error messages", &["Message", "Errors", "Visitors"]),
        [["TypeError: x is undefined", "2", "2"], ["ReferenceError: y", "1", "1"]]
    );
    let vitals = &panel("webstats-troubleshooting / TTFB p75")[0];
    // quantileExact(0.75) of 8 samples is the 7th smallest.
    assert_eq!(["TTFB", "FCP", "LCP", "INP"].map(|v| n(vitals, v)), [700.0, 1700.0, 2700.0, 350.0], "{vitals}");
    assert!((n(vitals, "CLS") - 0.07).abs() < 1e-6, "{vitals}");
    let networks = panel("webstats-troubleshooting / Networks");
    assert_eq!(
        rows("webstats-troubleshooting / Networks", &["ASN", "Organisation", "Addresses", "Beacons"]),
        [["12389", "Rostelecom", "10", "21"], ["15169", "Google", "2", "2"]]
    );
    assert!(close(n(&networks[0], "Errors per pageview"), 0.3) && close(n(&networks[0], "TTFB p75"), 700.0));

    // The current visitors of `live`; then every query again with every site ("All").
    let live = run_all(&install, Range::days(day, day), VarValue::One("live".into()));
    assert_eq!(n(&live["webstats-audience / Current visitors"][0], "Current visitors"), 3.0);
    let all = VarValue::All { all_value: None, options: vec!["live".into(), "lk".into()] };
    let everything = run_all(&install, Range::days(day - 1, day), all);
    assert_eq!(n(&everything["webstats-audience / Visitors"][1], "Visitors"), 17.0, "both days of lk");
}

/// The same rows on one server and on a 2 x 2 cluster (docs/operations.md, "Running a
/// cluster"), seeded through the Distributed tables: every rollup table holds the same rows,
/// and every panel of every dashboard gives the same answer, for one site and for all.
#[test]
fn the_rollups_and_panels_give_the_same_answers_on_a_two_by_two_cluster() {
    let cluster = e2e::cluster::Cluster::start("dashboards", 2, 2);
    let single = Install::new("dashsingle");
    let clustered = Install::on_cluster(&cluster, "dashcluster");
    let day = seed_and_roll_up(&single);
    assert_eq!(seed_and_roll_up(&clustered), day);

    // Every table of the rollups database, row by row (each install names it by its prefix).
    let tables = single
        .sql(&format!("SELECT name FROM system.tables WHERE database = '{}_rollups' ORDER BY name", single.prefix));
    let tables: Vec<&str> = tables.lines().collect();
    assert!(tables.len() >= 15 && tables.contains(&"daily_totals"), "{tables:?}");
    for table in tables {
        // The current visitors are stamped with the minute they were counted in.
        let columns = if table == "current_visitors" { "site, visitors" } else { "*" };
        let rows = |install: &Install| {
            let mut rows: Vec<String> = install
                .sql(&format!("SELECT {columns} FROM {}_rollups.{table} FORMAT JSONEachRow", install.prefix))
                .lines()
                .map(str::to_owned)
                .collect();
            rows.sort();
            rows
        };
        let (one, many) = (rows(&single), rows(&clustered));
        assert_eq!(one, many, "rollups.{table} differs between one server and the cluster");
        eprintln!("[dashboards] rollups.{table}: {} rows, the same on the cluster", one.len());
    }

    let all = || VarValue::All { all_value: None, options: vec!["live".into(), "lk".into()] };
    for (range, site) in [
        (Range::days(day, day), VarValue::One("lk".into())),
        (Range::days(day, day), VarValue::One("live".into())),
        (Range::days(day - 1, day), all()),
    ] {
        let (one, many) = (run_all(&single, range, site.clone()), run_all(&clustered, range, site));
        assert_eq!(one.len(), many.len());
        for (panel, rows) in &one {
            assert!(!panel.is_empty());
            assert_eq!(Some(rows), many.get(panel), "{panel}: one server, then the cluster");
        }
    }
}

#[test]
fn the_analyst_runs_every_audience_panel_and_is_refused_the_event_stores() {
    let install = Install::new("dashaccess");
    let as_analyst = |sql: &str| {
        let (user, password) = (install.user(Role::Analyst), install.password(Role::Analyst));
        grafana::plugin_request(install.server().url(), &user, &password, sql, "Native")
    };
    let day = seed::today();
    for d in grafana::dashboards().iter().filter(|d| d.datasource_type() == grafana::CLICKHOUSE) {
        let vars = Vars::defaults(d).one("prefix", &install.prefix).one("site", "lk");
        for q in d.queries() {
            let analyst = as_analyst(&expand(&q, &vars, Range::days(day - 30, day)));
            if d.uid() == "webstats-audience" {
                analyst.unwrap_or_else(|e| panic!("{}: {e}", q.origin));
            } else {
                let error = analyst.expect_err(&q.origin);
                assert!(error.contains("Access denied to database"), "{}: {error}", q.origin);
            }
        }
    }
    for store in [install.audience(), install.troubleshooting()] {
        let refused = as_analyst(&format!("SELECT count() FROM {store}"));
        assert!(refused.unwrap_err().contains("Access denied to database"), "{store}");
    }
}
