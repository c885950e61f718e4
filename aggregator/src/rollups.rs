//! The analysts' rollups (privacy-model.md section 5): daily counts per dimension from the
//! audience store, keeping only groups with at least `min_group_size` distinct visitors and
//! leaving out blocked people. A day is recomputed whole (drop its partition, insert it again),
//! so a refresh is idempotent; a pass refreshes recent days, a block or erase the days the
//! person appears on.

use clickhouse::Client;
use store::{BLOCKED_SUBJECTS_SQL, Databases, ROLLUPS, Rollup};

/// Recomputes every rollup for each of `days` (day numbers since the epoch).
pub async fn refresh(
    client: &Client,
    databases: &Databases,
    days: &[u16],
    min_group_size: u32,
) -> Result<(), clickhouse::error::Error> {
    for &day in days {
        for rollup in ROLLUPS {
            let table = format!("{}.{}", databases.rollups(), rollup.table);
            client.query(&format!("ALTER TABLE {table} DROP PARTITION '{}'", date_literal(day))).execute().await?;
            client.query(&insert_sql(databases, rollup, &table, min_group_size)).bind(u32::from(day)).execute().await?;
        }
    }
    Ok(())
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

fn insert_sql(databases: &Databases, rollup: &Rollup, table: &str, min_group_size: u32) -> String {
    let dims: String = rollup.dimensions.iter().map(|d| format!(", {d}")).collect();
    let blocked = databases.render(BLOCKED_SUBJECTS_SQL);
    format!(
        "INSERT INTO {table} ({columns}) \
         SELECT date, site{dims}, count() AS {measure}, uniqExactIf(visitor_id, visitor_id != 0) AS visitors \
         FROM {events} \
         WHERE date = toDate(?) AND type = '{kind}' \
           AND (site, cookie_id) NOT IN (SELECT site, subject_id FROM ({blocked}) WHERE subject_kind = 'cookie') \
           AND (site, visitor_id) NOT IN (SELECT site, subject_id FROM ({blocked}) WHERE subject_kind = 'visitor') \
         GROUP BY date, site{dims} \
         HAVING visitors >= {min_group_size}",
        columns = rollup.columns().join(", "),
        measure = rollup.measure(),
        events = databases.audience_events(),
        kind = rollup.kind.as_str(),
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
    fn counts_distinct_visitors_and_filters_small_groups() {
        let db = Databases::new("p").unwrap();
        let sql = insert_sql(&db, &ROLLUPS[1], "p_rollups.daily_pages", 5);
        assert!(
            sql.starts_with("INSERT INTO p_rollups.daily_pages (date, site, host, path, pageviews, visitors)"),
            "{sql}"
        );
        assert!(
            sql.contains("HAVING visitors >= 5")
                && sql.contains("type = 'pageview'")
                && sql.contains("p_meta.blocklist")
        );
    }
}
