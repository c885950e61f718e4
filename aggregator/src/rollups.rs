//! The analysts' rollups (docs/dashboards.md defines every measure): visits and counts per
//! dimension, computed in ClickHouse from the audience store, so any number of collectors gives
//! the same answer. Groups with fewer than `min_group_size` distinct visitors are left out and
//! blocked people never counted. A day is recomputed whole (drop its partition, insert it
//! again), so a refresh is idempotent; a pass refreshes recent days, a block or erase the days
//! the person appears on.
//!
//! The SQL is built in stages, each a subquery of the next:
//! - [`base`]: one day's pageviews and events of people not blocked, with the visitor key
//!   (the cookie id in cookie mode, else the visitor id; 0 for anonymous views);
//! - [`visits`]: one row per visit, cut where one visitor's beacons are more than
//!   [`VISIT_GAP_S`] apart; its beacons travel along as an array of tuples ([`BEACON`]);
//! - one `INSERT ... SELECT` per table of [`ROLLUPS`], by what it measures.

use clickhouse::Client;
use store::{
    BLOCKED_SUBJECTS_SQL, CURRENT_VISITORS_TABLE, CURRENT_WINDOW_S, Databases, Grain, Measures, ROLLUPS, Rollup,
    VISIT_GAP_S,
};

use crate::{channels::Channels, partitions::Partitions};

/// Recomputes every rollup for each of `days` (day numbers since the epoch).
pub async fn refresh(
    client: &Client,
    partitions: &Partitions,
    databases: &Databases,
    days: &[u16],
    min_group_size: u32,
) -> Result<(), clickhouse::error::Error> {
    let channels = Channels::builtin();
    for &day in days {
        let date = date_literal(day);
        for rollup in ROLLUPS {
            let table = format!("{}.{}", databases.rollups(), rollup.table);
            partitions.drop_partition(&table, &format!("'{date}'")).await?;
            client.query(&insert_sql(databases, rollup, &date, min_group_size, &channels)).execute().await?;
        }
    }
    Ok(())
}

/// Writes the distinct visitors of the last [`CURRENT_WINDOW_S`] seconds before `now` per
/// site into `{rollups}.current_visitors`: 0 for a site with fewer than `min_group_size`.
pub async fn record_current_visitors(
    client: &Client,
    databases: &Databases,
    now: u32,
    min_group_size: u32,
) -> Result<(), clickhouse::error::Error> {
    client.query(&current_visitors_sql(databases, now, min_group_size)).execute().await
}

/// The days (day numbers) on which `column = id` has audience rows for `site`.
pub async fn days_with(
    client: &Client,
    databases: &Databases,
    site: &str,
    column: &str,
    id: u64,
) -> Result<Vec<u16>, clickhouse::error::Error> {
    client
        .query(&format!(
            "SELECT DISTINCT toUInt16(date) FROM {} WHERE site = ? AND {column} = ?",
            databases.audience_events()
        ))
        .bind(site)
        .bind(id)
        .fetch_all::<u16>()
        .await
}

/// The fields of one beacon inside a visit, in tuple order: `ts` first, so that sorting the
/// tuples orders the beacons by time (then pageviews before events of the same second).
const BEACON: &[&str] = &[
    "ts",
    "kind",
    "host",
    "path",
    "ref_host",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "browser",
    "os",
    "device",
    "country",
    "region",
    "city",
    "screen_width",
];

/// `b.N`: the tuple element of beacon field `field`.
fn field(tuple: &str, field: &str) -> String {
    let index = BEACON.iter().position(|f| *f == field).expect("a field of BEACON") + 1;
    format!("{tuple}.{index}")
}

/// `kind` values: the `type` Enum8's numbers.
const PAGEVIEW: i8 = store::EventType::Pageview as i8;
const EVENT: i8 = store::EventType::Event as i8;

/// The audience rows `filter` selects, pageviews and events only, without blocked people.
fn base(databases: &Databases, filter: &str) -> String {
    let blocked = databases.render(BLOCKED_SUBJECTS_SQL);
    format!(
        "SELECT site, ts, CAST(type AS Int8) AS kind, if(cookie_id != 0, cookie_id, visitor_id) AS visitor, \
                host, path, ref_host, utm_source, utm_medium, utm_campaign, name, prop_keys, prop_values, \
                browser, os, device, country, region, city, screen_width \
         FROM {events} \
         WHERE {filter} AND type IN ('pageview', 'event') \
           AND (site, cookie_id) NOT IN (SELECT site, subject_id FROM ({blocked}) WHERE subject_kind = 'cookie') \
           AND (site, visitor_id) NOT IN (SELECT site, subject_id FROM ({blocked}) WHERE subject_kind = 'visitor')",
        events = databases.audience_events(),
    )
}

/// One row per visit of the rows of [`base`]: `site, visitor`, `v_start`, `v_duration`
/// (seconds from the first beacon to the last), `v_pageviews`, `v_events`, `v_bounce` (one
/// pageview and nothing else), the entry beacon's fields by name, and `visit`, the beacons.
fn visits(base: &str) -> String {
    let tuple = BEACON.join(", ");
    let entry: String = BEACON[2..].iter().map(|f| format!(", {} AS {f}", field("visit[1]", f))).collect();
    format!(
        "SELECT site, visitor, {start} AS v_start, toUInt64({end} - {start}) AS v_duration, \
                toUInt64(countEqual(arrayMap(b -> {kind}, visit), {PAGEVIEW})) AS v_pageviews, \
                toUInt64(length(visit) - v_pageviews) AS v_events, \
                toUInt64(length(visit) = 1 AND v_pageviews = 1) AS v_bounce{entry}, visit \
         FROM ( \
             SELECT site, visitor, arraySort(groupArray(({tuple}))) AS beacons, \
                    arrayFilter((i, gap) -> i = 1 OR gap > {VISIT_GAP_S}, arrayEnumerate(beacons), \
                                arrayDifference(arrayMap(b -> toInt64({ts}), beacons))) AS firsts, \
                    arrayMap(k -> arraySlice(beacons, firsts[k], \
                                 if(k < length(firsts), firsts[k + 1], length(beacons) + 1) - firsts[k]), \
                             arrayEnumerate(firsts)) AS visits \
             FROM ({base}) WHERE visitor != 0 GROUP BY site, visitor \
         ) ARRAY JOIN visits AS visit",
        start = field("visit[1]", "ts"),
        end = field("visit[-1]", "ts"),
        kind = field("b", "kind"),
        ts = field("b", "ts"),
    )
}

/// The screen-size class of a screen width in CSS pixels (the breakpoints Plausible uses).
const SCREEN_CLASS: &str = "multiIf(screen_width = 0, '', screen_width < 576, 'mobile', \
     screen_width < 992, 'tablet', screen_width < 1440, 'laptop', 'desktop')";

/// The SQL of one visit dimension over the columns of [`visits`].
fn visit_dimension(column: &str, channels: &Channels) -> String {
    match column {
        "channel" => channels.sql(),
        "screen_class" => SCREEN_CLASS.to_owned(),
        other => other.to_owned(),
    }
}

fn insert_sql(databases: &Databases, rollup: &Rollup, date: &str, min_group_size: u32, channels: &Channels) -> String {
    let day = base(databases, &format!("date = toDate('{date}')"));
    let time = match rollup.grain {
        Grain::Daily => format!("toDate('{date}') AS date"),
        Grain::Hourly => "toStartOfHour(v_start) AS hour".to_owned(),
    };
    let group = |dimensions: &[&str]| {
        let mut keys = vec![rollup.grain.column(), "site"];
        keys.extend_from_slice(dimensions);
        keys.join(", ")
    };
    let dims = |exprs: Vec<String>| -> String { exprs.iter().map(|e| format!(", {e}")).collect() };
    let select = match rollup.measures {
        // Visits, plus the anonymous views outside them, each counted at its own time.
        Measures::Totals => format!(
            "SELECT {time}, site, uniqExactIf(visitor, visitor != 0) AS visitors, sum(v_visits), \
                    sum(v_pageviews), sumIf(v_pageviews, visitor = 0), sum(v_events), sum(v_bounce), sum(v_duration) \
             FROM ( \
                 SELECT site, visitor, v_start, toUInt64(1) AS v_visits, v_pageviews, v_events, v_bounce, v_duration \
                 FROM ({visits}) \
                 UNION ALL \
                 SELECT site, visitor, ts AS v_start, toUInt64(0), toUInt64(kind = {PAGEVIEW}), \
                        toUInt64(kind = {EVENT}), toUInt64(0), toUInt64(0) \
                 FROM ({day}) WHERE visitor = 0 \
             ) GROUP BY {keys}",
            visits = visits(&day),
            keys = group(&[]),
        ),
        // Each beacon on its page; a visit's first beacon is its entry, its last its exit.
        Measures::Pages => format!(
            "SELECT {time}, site, host, path, uniqExactIf(visitor, visitor != 0) AS visitors, sum(p_pageviews), \
                    sum(p_entry), sum(p_exit), sum(p_bounce) \
             FROM ( \
                 SELECT site, visitor, {host} AS host, {path} AS path, toUInt64({kind} = {PAGEVIEW}) AS p_pageviews, \
                        toUInt64(position = 1) AS p_entry, toUInt64(position = length(visit)) AS p_exit, \
                        toUInt64(position = 1 AND v_bounce) AS p_bounce \
                 FROM ({visits}) ARRAY JOIN visit AS b, arrayEnumerate(visit) AS position \
                 UNION ALL \
                 SELECT site, visitor, host, path, toUInt64(kind = {PAGEVIEW}), toUInt64(0), toUInt64(0), toUInt64(0) \
                 FROM ({day}) WHERE visitor = 0 \
             ) GROUP BY {keys}",
            visits = visits(&day),
            host = field("b", "host"),
            path = field("b", "path"),
            kind = field("b", "kind"),
            keys = group(&["host", "path"]),
        ),
        Measures::Visits => format!(
            "SELECT {time}, site{dims}, uniqExact(visitor) AS visitors, count(), sum(v_pageviews), sum(v_bounce), \
                    sum(v_duration) \
             FROM ({visits}) GROUP BY {keys}",
            dims = dims(rollup.dimensions.iter().map(|d| format!("{} AS {d}", visit_dimension(d, channels))).collect()),
            visits = visits(&day),
            keys = group(rollup.dimensions),
        ),
        Measures::Events => {
            let props = if rollup.dimensions.contains(&"prop_key") {
                " ARRAY JOIN prop_keys AS prop_key, prop_values AS prop_value"
            } else {
                ""
            };
            format!(
                "SELECT {time}, site{dims}, uniqExactIf(visitor, visitor != 0) AS visitors, count() \
                 FROM ({day}){props} WHERE kind = {EVENT} GROUP BY {keys}",
                dims = dims(rollup.dimensions.iter().map(|d| d.to_string()).collect()),
                keys = group(rollup.dimensions),
            )
        }
    };
    format!(
        "INSERT INTO {table} ({columns}) {select} HAVING visitors >= {min_group_size}",
        table = format_args!("{}.{}", databases.rollups(), rollup.table),
        columns = rollup.columns().join(", "),
    )
}

fn current_visitors_sql(databases: &Databases, now: u32, min_group_size: u32) -> String {
    let since = now.saturating_sub(CURRENT_WINDOW_S);
    let recent = base(databases, &format!("date >= toDate(toDateTime({since})) AND ts > toDateTime({since})"));
    format!(
        "INSERT INTO {db}.{CURRENT_VISITORS_TABLE} (ts, site, visitors) \
         SELECT toDateTime({now}), site, if(uniqExact(visitor) >= {min_group_size}, uniqExact(visitor), 0) \
         FROM ({recent}) WHERE visitor != 0 AND ts <= toDateTime({now}) GROUP BY site",
        db = databases.rollups(),
    )
}

/// `YYYY-MM-DD` of a day number: the partition of a `Date` key.
fn date_literal(day: u16) -> String {
    let date = chrono::DateTime::from_timestamp(i64::from(day) * 86_400, 0).expect("a u16 day is a valid date");
    date.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_partitions_by_date() {
        assert_eq!(date_literal(0), "1970-01-01");
        assert_eq!(date_literal(20_416), "2025-11-24");
    }

    #[test]
    fn every_insert_names_its_columns_and_filters_small_groups() {
        let db = Databases::new("p").unwrap();
        for rollup in ROLLUPS {
            let sql = insert_sql(&db, rollup, "2026-11-27", 5, &Channels::builtin());
            let head = format!("INSERT INTO p_rollups.{} ({})", rollup.table, rollup.columns().join(", "));
            assert!(sql.starts_with(&head), "{sql}");
            assert!(sql.ends_with("HAVING visitors >= 5") && sql.contains("p_meta.blocklist"), "{sql}");
        }
    }
}
