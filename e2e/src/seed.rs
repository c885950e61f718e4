//! Crafted rows for the tests of rollups and dashboards: beacons at exact times, written
//! straight into the stores as the collector would have written them (the collector stamps
//! the receive time, so it cannot send yesterday's beacons).

use serde_json::{Value, json};

/// Today's day number (UTC).
pub fn today() -> u16 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    u16::try_from(now / 86_400).expect("before 2149")
}

/// `YYYY-MM-DD` of a day number.
pub fn date(day: u16) -> String {
    chrono::DateTime::from_timestamp(i64::from(day) * 86_400, 0).unwrap().format("%Y-%m-%d").to_string()
}

/// One beacon of a visitor; fields that are not set stay at their column defaults.
#[derive(Debug, Clone)]
pub struct Beacon {
    fields: serde_json::Map<String, Value>,
}

impl Beacon {
    /// A beacon of `kind` (`pageview`, `event`, `timing`, `error`) on `site` at `hms` (`HH:MM:SS`)
    /// of `day` (seconds past midnight may exceed a day), by `visitor` (0: anonymous), on `path`.
    pub fn new(kind: &str, site: &str, day: u16, hms: &str, visitor: u64, path: &str) -> Self {
        let parts: Vec<i64> = hms.split(':').map(|p| p.parse().expect("HH:MM:SS")).collect();
        let seconds = i64::from(day) * 86_400 + parts[0] * 3600 + parts[1] * 60 + parts[2];
        let ts = chrono::DateTime::from_timestamp(seconds, 0).unwrap();
        let mut fields = serde_json::Map::new();
        fields.insert("date".into(), json!(ts.format("%Y-%m-%d").to_string()));
        fields.insert("ts".into(), json!(ts.format("%Y-%m-%d %H:%M:%S").to_string()));
        fields.insert("site".into(), json!(site));
        fields.insert("type".into(), json!(kind));
        fields.insert("visitor_id".into(), json!(visitor));
        fields.insert("host".into(), json!(format!("{site}.example.ru")));
        fields.insert("path".into(), json!(path));
        Self { fields }
    }

    pub fn pageview(site: &str, day: u16, hms: &str, visitor: u64, path: &str) -> Self {
        Self::new("pageview", site, day, hms, visitor, path)
    }

    pub fn event(site: &str, day: u16, hms: &str, visitor: u64, path: &str, name: &str) -> Self {
        Self::new("event", site, day, hms, visitor, path).with("name", json!(name))
    }

    /// Sets any column.
    pub fn with(mut self, column: &str, value: Value) -> Self {
        self.fields.insert(column.into(), value);
        self
    }

    pub fn referrer(self, host: &str) -> Self {
        self.with("ref_host", json!(host))
    }

    pub fn utm(self, source: &str, medium: &str) -> Self {
        self.with("utm_source", json!(source)).with("utm_medium", json!(medium))
    }

    /// The visitor key in cookie mode: the cookie id, the visitor id changing daily.
    pub fn cookie(self, id: u64) -> Self {
        self.with("cookie_id", json!(id))
    }
}

/// Writes `beacons` into `table` of `install` as admin (on a cluster, through its Distributed
/// table, so the rows are sharded as the collector's are).
pub fn insert(install: &crate::Install, table: &str, beacons: &[Beacon]) {
    let body: String = beacons.iter().map(|b| Value::Object(b.fields.clone()).to_string() + "\n").collect();
    install.sql(&format!("INSERT INTO {table} FORMAT JSONEachRow\n{body}"));
}

/// A number from a JSON result: ClickHouse quotes 64-bit integers; `None` for null.
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}
