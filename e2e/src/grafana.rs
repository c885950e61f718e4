//! What Grafana and its data sources do to a panel's query before a server sees it, so that the
//! dashboards of `dashboards/grafana/` are tested without Grafana. Followed:
//! - Grafana 11.6 / 12 (Scenes) template interpolation: `$var`, `${var}`, `${var:format}`,
//!   `[[var]]`; `$__interval`, `$__interval_ms`, `$__from`, `$__to`; unknown names are left
//!   as they are, which is how the data sources' own macros survive; `calculateInterval`'s
//!   rounding of `(to - from) / maxDataPoints`;
//! - grafana-clickhouse-datasource v4.10.1, the last release whose HTTP client (clickhouse-go
//!   2.32) still talks to ClickHouse 18.16: the frontend's `applyConditionalAll` and `format`
//!   (`CHDatasource.ts`), then the backend's macros (`pkg/macros/macros.go` through sqlds and
//!   the plugin SDK's `sqlutil.Interpolate`), and the HTTP request it sends (POST, basic
//!   authentication, `default_format=Native`, `max_execution_time` = query timeout + 5 s);
//! - Grafana's Prometheus data source: multi-values as an escaped regex alternation, and
//!   `$__rate_interval` = max(`$__interval` + scrape interval, 4 × scrape interval).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::Value;

/// The plugin type of the official ClickHouse data source.
pub const CLICKHOUSE: &str = "grafana-clickhouse-datasource";
pub const PROMETHEUS: &str = "prometheus";

/// The backend macros a dashboard may use: what plugin v4.10.1 expands and ClickHouse 18.16
/// runs, plus the frontend's `$__conditionalAll`. (`$__timeInterval` needs `toStartOfInterval`
/// and the `_ms` macros `DateTime64`, which 18.16 lacks.)
pub const ALLOWED_MACROS: &[&str] = &["timeFilter", "dateFilter", "fromTime", "toTime", "interval_s", "conditionalAll"];

/// The data source's query timeout (`jsonData.queryTimeout`, default 60 s); clickhouse-go
/// sends it, plus 5 s, as `max_execution_time` with every query.
pub const QUERY_TIMEOUT_S: u64 = 60;

/// One dashboard file of `dashboards/grafana/`.
pub struct Dashboard {
    pub file: PathBuf,
    pub json: Value,
}

/// Every dashboard, sorted by file name.
pub fn dashboards() -> Vec<Dashboard> {
    let dir = crate::repo_root().join("dashboards/grafana");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.into_iter().map(|file| Dashboard::load(&file)).collect()
}

/// Where a query comes from: a panel's target or a query variable.
#[derive(Debug, Clone)]
pub struct Query {
    /// `"<dashboard uid> / <panel title> / <refId>"` or `"<uid> / variable <name>"`.
    pub origin: String,
    /// The panel's title (empty for a variable).
    pub panel: String,
    /// `CLICKHOUSE` or `PROMETHEUS`.
    pub datasource: &'static str,
    /// `rawSql` or `expr`, as written.
    pub text: String,
    /// The panel's `maxDataPoints` (Grafana's default is the panel's width in pixels).
    pub max_data_points: u64,
    /// The panel's `interval` (minimum interval), in milliseconds.
    pub min_interval_ms: u64,
}

impl Dashboard {
    pub fn load(file: &Path) -> Self {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        Self { file: file.to_owned(), json }
    }

    pub fn uid(&self) -> &str {
        self.json["uid"].as_str().unwrap_or_default()
    }

    /// Every panel but rows, rows' children included, in file order.
    pub fn panels(&self) -> Vec<&Value> {
        let mut panels = Vec::new();
        for panel in self.json["panels"].as_array().into_iter().flatten() {
            if panel["type"] == "row" {
                panels.extend(panel["panels"].as_array().into_iter().flatten());
            } else {
                panels.push(panel);
            }
        }
        panels
    }

    /// The rows.
    pub fn rows(&self) -> Vec<&Value> {
        self.json["panels"].as_array().into_iter().flatten().filter(|p| p["type"] == "row").collect()
    }

    pub fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"].as_array().into_iter().flatten().collect()
    }

    pub fn variable(&self, name: &str) -> Option<&Value> {
        self.variables().into_iter().find(|v| v["name"] == name)
    }

    /// The plugin type of the `datasource` variable: what every query of the dashboard uses.
    pub fn datasource_type(&self) -> &'static str {
        match self.variable("datasource").and_then(|v| v["query"].as_str()) {
            Some(CLICKHOUSE) => CLICKHOUSE,
            Some(PROMETHEUS) => PROMETHEUS,
            other => panic!("{}: the datasource variable's plugin is {other:?}", self.uid()),
        }
    }

    /// Every query the dashboard sends: each target that queries a data source (not the
    /// `-- Dashboard --` source, which reuses another panel's result), and each query variable.
    pub fn queries(&self) -> Vec<Query> {
        let datasource = self.datasource_type();
        let mut queries = Vec::new();
        for panel in self.panels() {
            if is_dashboard_source(&panel["datasource"]) {
                continue;
            }
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let text = target.get("rawSql").or_else(|| target.get("expr"));
                queries.push(Query {
                    origin: format!("{} / {title} / {}", self.uid(), target["refId"].as_str().unwrap_or("?")),
                    panel: title.to_owned(),
                    datasource,
                    text: text.and_then(Value::as_str).unwrap_or_default().to_owned(),
                    max_data_points: panel["maxDataPoints"].as_u64().unwrap_or(500),
                    min_interval_ms: panel["interval"].as_str().map_or(1, duration_ms),
                });
            }
        }
        for variable in self.variables().into_iter().filter(|v| v["type"] == "query") {
            let text = match &variable["query"] {
                Value::String(s) => s.clone(),
                other => other["rawSql"].as_str().or_else(|| other["query"].as_str()).unwrap_or_default().to_owned(),
            };
            queries.push(Query {
                origin: format!("{} / variable {}", self.uid(), variable["name"].as_str().unwrap_or("?")),
                panel: String::new(),
                datasource,
                text,
                // Variable queries carry no interval: the backend sees 1000 ms.
                max_data_points: 0,
                min_interval_ms: 1000,
            });
        }
        queries
    }
}

/// The data sources of `dashboards/provisioning/datasources/webstats.yaml`.
pub fn provisioned_datasources() -> Vec<Value> {
    let file = crate::repo_root().join("dashboards/provisioning/datasources/webstats.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let yaml: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    yaml["datasources"].as_array().expect("a datasources list").clone()
}

impl Dashboard {
    /// The role whose user the dashboard's default ClickHouse data source connects as.
    pub fn role(&self) -> store::roles::Role {
        let default = &self.variable("datasource").expect("a datasource variable")["current"]["value"];
        let datasource = provisioned_datasources().into_iter().find(|ds| ds["uid"] == *default);
        let datasource =
            datasource.unwrap_or_else(|| panic!("{}: data source {default} is not provisioned", self.uid()));
        let user = datasource["jsonData"]["username"].as_str().unwrap_or_default().to_owned();
        store::roles::Role::ALL
            .into_iter()
            .find(|r| user == format!("webstats_{}", r.name()))
            .unwrap_or_else(|| panic!("{}: {user} is not a role's user", self.uid()))
    }
}

/// `{"type": "datasource", "uid": "-- Dashboard --"}`: a panel that shows another panel's data.
pub fn is_dashboard_source(datasource: &Value) -> bool {
    datasource["uid"] == "-- Dashboard --"
}

/// `1m`, `30s`, `500ms`, `2h`, `1d` in milliseconds.
pub fn duration_ms(text: &str) -> u64 {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("bad duration {text:?}"));
    n * match unit {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => panic!("bad duration {text:?}"),
    }
}

/// A dashboard time range, in Unix milliseconds, `to` inclusive as Grafana sends it.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Range {
    /// Whole UTC days: from `first` 00:00:00.000 to `last` 23:59:59.999.
    pub fn days(first: u16, last: u16) -> Self {
        Self { from_ms: i64::from(first) * 86_400_000, to_ms: (i64::from(last) + 1) * 86_400_000 - 1 }
    }

    fn start_s(self) -> i64 {
        self.from_ms.div_euclid(1000)
    }

    fn end_s(self) -> i64 {
        self.to_ms.div_euclid(1000)
    }
}

/// Grafana's `rangeutil.calculateInterval`: the interval of a query in milliseconds.
pub fn interval_ms(range: Range, max_data_points: u64, min_interval_ms: u64) -> u64 {
    if max_data_points == 0 {
        return min_interval_ms;
    }
    let raw = u64::try_from(range.to_ms - range.from_ms).unwrap_or(0) / max_data_points;
    round_interval(raw).max(min_interval_ms)
}

/// `rangeutil.roundInterval`.
fn round_interval(ms: u64) -> u64 {
    const LADDER: &[(u64, u64)] = &[
        (10, 1),
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1_500, 1_000),
        (3_500, 2_000),
        (7_500, 5_000),
        (12_500, 10_000),
        (17_500, 15_000),
        (25_000, 20_000),
        (45_000, 30_000),
        (90_000, 60_000),
        (210_000, 120_000),
        (450_000, 300_000),
        (750_000, 600_000),
        (1_050_000, 900_000),
        (1_500_000, 1_200_000),
        (2_700_000, 1_800_000),
        (5_400_000, 3_600_000),
        (9_000_000, 7_200_000),
        (16_200_000, 10_800_000),
        (32_400_000, 21_600_000),
        (86_400_000, 43_200_000),
        (604_800_000, 86_400_000),
        (1_814_400_000, 604_800_000),
        (3_628_800_000, 2_592_000_000),
    ];
    LADDER.iter().find(|(below, _)| ms < *below).map_or(31_536_000_000, |(_, to)| *to)
}

/// `$__interval` as Grafana writes it: the largest unit that divides the interval.
fn interval_text(ms: u64) -> String {
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// The value of a dashboard variable.
#[derive(Debug, Clone)]
pub enum VarValue {
    One(String),
    Many(Vec<String>),
    /// "All": the variable's `allValue` if it has one, else every option.
    All {
        all_value: Option<String>,
        options: Vec<String>,
    },
}

/// The current values of a dashboard's variables.
#[derive(Debug, Clone, Default)]
pub struct Vars(BTreeMap<String, VarValue>);

impl Vars {
    pub fn set(mut self, name: &str, value: VarValue) -> Self {
        self.0.insert(name.to_owned(), value);
        self
    }

    pub fn one(self, name: &str, value: &str) -> Self {
        self.set(name, VarValue::One(value.to_owned()))
    }

    /// The `constant` and `datasource` variables of `dashboard` at their saved values.
    pub fn defaults(dashboard: &Dashboard) -> Self {
        let mut vars = Vars::default();
        for v in dashboard.variables() {
            let name = v["name"].as_str().unwrap_or_default();
            match v["type"].as_str() {
                Some("constant") => vars = vars.one(name, v["query"].as_str().unwrap_or_default()),
                Some("datasource") => vars = vars.one(name, v["current"]["value"].as_str().unwrap_or_default()),
                _ => {}
            }
        }
        vars
    }
}

/// How one data source formats a variable's value when no `:format` is given.
#[derive(Clone, Copy)]
enum Flavour {
    ClickHouse,
    Prometheus,
}

/// Grafana's interpolation of `text` with `vars` and the built-in `$__interval`,
/// `$__interval_ms`, `$__from`, `$__to` (and, for Prometheus, `$__rate_interval` and
/// `$__range`). Names it does not know are left as written.
fn interpolate(text: &str, vars: &Vars, builtins: &BTreeMap<&str, String>, flavour: Flavour) -> String {
    let pattern = regex::Regex::new(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")
        .expect("Grafana's variable pattern");
    pattern
        .replace_all(text, |caps: &regex::Captures| {
            let whole = caps[0].to_owned();
            let name = caps.get(1).or(caps.get(2)).or(caps.get(4)).map_or("", |m| m.as_str());
            let format = caps.get(3).or(caps.get(6)).map(|m| m.as_str());
            if let Some(value) = builtins.get(name) {
                return value.clone();
            }
            match vars.0.get(name) {
                Some(value) => format_value(value, format, flavour),
                None => whole,
            }
        })
        .into_owned()
}

fn format_value(value: &VarValue, format: Option<&str>, flavour: Flavour) -> String {
    let values = match value {
        // A custom all value is inserted as it is, whatever the format.
        VarValue::All { all_value: Some(raw), .. } => return raw.clone(),
        VarValue::All { all_value: None, options } => options.clone(),
        VarValue::Many(many) => many.clone(),
        VarValue::One(one) => {
            return match (format, flavour) {
                (Some("singlequote"), _) => single_quote(one),
                (Some("regex"), _) | (None, Flavour::Prometheus) => regex_escape(one),
                (Some("raw"), _) | (None, Flavour::ClickHouse) => one.clone(),
                (Some(other), _) => panic!("format {other:?} is not emulated"),
            };
        }
    };
    match (format, flavour) {
        (Some("singlequote"), _) => values.iter().map(|v| single_quote(v)).collect::<Vec<_>>().join(","),
        (Some("regex"), _) | (None, Flavour::Prometheus) => {
            format!("({})", values.iter().map(|v| regex_escape(v)).collect::<Vec<_>>().join("|"))
        }
        // The ClickHouse plugin's own format: quoted, comma-separated, nothing escaped.
        (None, Flavour::ClickHouse) => format!("'{}'", values.join("','")),
        (Some(other), _) => panic!("format {other:?} is not emulated"),
    }
}

fn single_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "\\'"))
}

fn regex_escape(value: &str) -> String {
    value.chars().fold(String::new(), |mut out, c| {
        if "\\^$*+?.()|{}[]/".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// The frontend's `applyConditionalAll`: `$__conditionalAll(condition, $var)` becomes `1=1`
/// when `var` is "All" (or empty), else the condition; right to left, stopping at the first
/// call without exactly two arguments.
fn conditional_all(sql: &str, vars: &Vars) -> String {
    const MACRO: &str = "$__conditionalAll(";
    let mut sql = sql.to_owned();
    while let Some(index) = sql.rfind(MACRO) {
        let Some(params) = macro_args(&sql[index + MACRO.len() - 1..]) else { return sql };
        if params.len() != 2 {
            return sql;
        }
        let var = params[1].trim().trim_start_matches('$').trim_start_matches('{').trim_end_matches('}');
        let is_all = match vars.0.get(var) {
            Some(VarValue::All { .. }) => true,
            Some(VarValue::One(v)) => v.is_empty(),
            Some(VarValue::Many(v)) => v.is_empty(),
            None => false,
        };
        let phrase = if is_all { "1=1".to_owned() } else { params[0].clone() };
        let call = format!("{MACRO}{},{})", params[0], params[1]);
        sql = sql.replacen(&call, &phrase, 1);
    }
    sql
}

/// The frontend's `getMacroArgs`: the arguments of the call whose `(` starts `text`, split
/// on commas at depth 1, not trimmed; `None` if it never closes. Quotes are not understood.
fn macro_args(text: &str) -> Option<Vec<String>> {
    let mut depth = 0;
    let mut args = Vec::new();
    let mut start = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    args.push(text[start..i].to_owned());
                    return Some(args);
                }
            }
            ',' if depth == 1 => {
                args.push(text[start..i].to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

/// The backend's macros (plugin v4.10.1 through `sqlutil.Interpolate`): longest name first,
/// each `$__name` followed by `(args)` or not, every identical occurrence replaced. A macro
/// that 18.16 cannot run, or that the plugin does not know, is an error.
fn backend_macros(sql: &str, range: Range, interval_ms: u64) -> Result<String, String> {
    let date = |s: i64| {
        let d = chrono::DateTime::from_timestamp(s, 0).expect("a valid time");
        format!("toDate('{}')", d.format("%Y-%m-%d"))
    };
    let (from, to) = (range.start_s(), range.end_s());
    let mut names: Vec<String> =
        regex::Regex::new(r"\$__(\w+)").expect("a valid pattern").captures_iter(sql).map(|c| c[1].to_owned()).collect();
    names.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    names.dedup();
    let mut sql = sql.to_owned();
    for name in names {
        let pattern = regex::Regex::new(&format!(r"\$__{name}\b")).expect("a valid pattern");
        while let Some(found) = pattern.find(&sql) {
            let rest = &sql[found.end()..];
            let (args, call_len) = match rest.starts_with('(').then(|| macro_args(rest)).flatten() {
                Some(args) => {
                    let len = args.iter().map(String::len).sum::<usize>() + args.len() + 1;
                    (args.into_iter().map(|a| a.trim().to_owned()).collect::<Vec<_>>(), len)
                }
                None => (Vec::new(), 0),
            };
            let one = |args: &[String]| match args {
                [column] => Ok(column.clone()),
                _ => Err(format!("$__{name} expected 1 argument, received {}", args.len())),
            };
            let expansion = match name.as_str() {
                "timeFilter" => {
                    let c = one(&args)?;
                    format!("{c} >= toDateTime({from}) AND {c} <= toDateTime({to})")
                }
                "dateFilter" => {
                    let c = one(&args)?;
                    format!("{c} >= {} AND {c} <= {}", date(from), date(to))
                }
                "fromTime" => format!("toDateTime({from})"),
                "toTime" => format!("toDateTime({to})"),
                "interval_s" => (interval_ms / 1000).max(1).to_string(),
                other => return Err(format!("$__{other} is not allowed: see grafana::ALLOWED_MACROS")),
            };
            let call = format!("{}{}", found.as_str(), &rest[..call_len]);
            sql = sql.replace(&call, &expansion);
        }
    }
    Ok(sql)
}

/// A ClickHouse panel's SQL as the plugin sends it for `range` with `vars`.
pub fn expand_sql(query: &Query, vars: &Vars, range: Range) -> Result<String, String> {
    let interval = interval_ms(range, query.max_data_points, query.min_interval_ms);
    let builtins = BTreeMap::from([
        ("__interval", interval_text(interval)),
        ("__interval_ms", interval.to_string()),
        ("__from", range.from_ms.to_string()),
        ("__to", range.to_ms.to_string()),
    ]);
    let sql = conditional_all(&query.text, vars);
    let sql = interpolate(&sql, vars, &builtins, Flavour::ClickHouse);
    backend_macros(&sql, range, interval)
}

/// A Prometheus panel's expression as Grafana sends it, and the step of its range query in
/// seconds. `scrape_interval_s` is the data source's `timeInterval`.
pub fn expand_promql(query: &Query, vars: &Vars, range: Range, scrape_interval_s: u64) -> (String, u64) {
    let interval = interval_ms(range, query.max_data_points, query.min_interval_ms.max(scrape_interval_s * 1000));
    let rate_interval = (interval + scrape_interval_s * 1000).max(4 * scrape_interval_s * 1000);
    let builtins = BTreeMap::from([
        ("__interval", interval_text(interval)),
        ("__interval_ms", interval.to_string()),
        ("__rate_interval", interval_text(rate_interval)),
        ("__range", format!("{}s", (range.to_ms - range.from_ms) / 1000)),
        ("__from", range.from_ms.to_string()),
        ("__to", range.to_ms.to_string()),
    ]);
    (interpolate(&query.text, vars, &builtins, Flavour::Prometheus), (interval / 1000).max(1))
}

/// What the plugin's HTTP client sends with a query: the URL parameters of clickhouse-go 2.32
/// over HTTP (`default_format`, and `max_execution_time` from the query's deadline) and basic
/// authentication. The body of the answer, or the server's error message.
pub fn plugin_request(url: &str, user: &str, password: &str, sql: &str, format: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut response = crate::http()
        .post(&format!("{url}/?default_format={format}&max_execution_time={}", QUERY_TIMEOUT_S + 5))
        .header("Authorization", &basic_auth(user, password))
        .header("Accept-Encoding", "gzip")
        .send(sql)
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let mut body = Vec::new();
    response.body_mut().as_reader().read_to_end(&mut body).map_err(|e| e.to_string())?;
    if status == 200 { Ok(body) } else { Err(String::from_utf8_lossy(&body).into_owned()) }
}

fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Query {
        Query {
            origin: "test".into(),
            panel: "test".into(),
            datasource: CLICKHOUSE,
            text: text.into(),
            max_data_points: 500,
            min_interval_ms: 1,
        }
    }

    #[test]
    fn expands_as_the_plugin_does() {
        // 2026-11-26, a whole day: 86400 s / 500 points = 172.8 s, rounded to 2 minutes.
        let range = Range::days(20_783, 20_783);
        let vars = Vars::default().one("site", "lk").one("prefix", "webstats");
        let sql = expand_sql(
            &query(
                "SELECT intDiv(toUInt32(ts), $__interval_s) FROM ${prefix}_x.t WHERE $__timeFilter(ts) \
                 AND $__dateFilter(date) AND $__conditionalAll(site IN (${site:singlequote}), $site) \
                 AND ts < $__toTime AND ts >= $__fromTime -- $__interval",
            ),
            &vars,
            range,
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT intDiv(toUInt32(ts), 120) FROM webstats_x.t WHERE ts >= toDateTime(1795651200) AND \
             ts <= toDateTime(1795737599) AND date >= toDate('2026-11-26') AND date <= toDate('2026-11-26') \
             AND site IN ('lk') AND ts < toDateTime(1795737599) AND ts >= toDateTime(1795651200) -- 2m"
        );
        let all = vars.set("site", VarValue::All { all_value: None, options: vec!["a".into(), "b".into()] });
        let sql = expand_sql(&query("WHERE $__conditionalAll(site IN (${site:singlequote}), $site)"), &all, range);
        assert_eq!(sql.unwrap(), "WHERE 1=1");
        assert!(expand_sql(&query("SELECT $__timeInterval(ts)"), &all, range).is_err());
    }

    #[test]
    fn formats_prometheus_values_as_regexes() {
        let vars = Vars::default()
            .set("site", VarValue::Many(vec!["a.b".into(), "c".into()]))
            .set("instance", VarValue::All { all_value: Some(".*".into()), options: vec![] });
        let mut q = query("rate(x{site=~\"$site\",instance=~\"$instance\"}[$__rate_interval])");
        q.datasource = PROMETHEUS;
        let (expr, step) = expand_promql(&q, &vars, Range { from_ms: 0, to_ms: 600_000 }, 1);
        assert_eq!(expr, "rate(x{site=~\"(a\\.b|c)\",instance=~\".*\"}[4s])");
        assert_eq!(step, 1);
    }

    #[test]
    fn encodes_basic_credentials() {
        assert_eq!(basic_auth("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }
}
