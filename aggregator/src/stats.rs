//! `aggregator stats`: the headline numbers of a site for a period, so that a user sees
//! results without Grafana. Visitors are distinct daily visitor ids (a person seen on two
//! days counts twice, by design of the daily salt) plus nothing for anonymous views.

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use store::Databases;

/// The report, also the `--json` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub site: String,
    /// Inclusive start, Unix seconds.
    pub from: u32,
    /// Exclusive end, Unix seconds.
    pub to: u32,
    pub pageviews: u64,
    /// Pageviews counted without a visitor id (DNT / Sec-GPC in anonymous mode).
    pub anonymous_pageviews: u64,
    pub events: u64,
    pub visitors: u64,
    /// Beacons from crawlers, kept for troubleshooting only.
    pub bot_hits: u64,
    pub top_pages: Vec<PageStats>,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PageStats {
    pub path: String,
    pub pageviews: u64,
    pub visitors: u64,
}

#[derive(Row, Deserialize)]
struct Totals {
    pageviews: u64,
    anonymous_pageviews: u64,
    events: u64,
    visitors: u64,
}

pub async fn stats(
    client: &Client,
    databases: &Databases,
    site: &str,
    from: u32,
    to: u32,
    top: u32,
) -> Result<Stats, clickhouse::error::Error> {
    let audience = databases.audience_events();
    let totals: Totals = client
        .query(&format!(
            "SELECT countIf(type = 'pageview') AS pageviews, \
                    countIf(type = 'pageview' AND visitor_id = 0) AS anonymous_pageviews, \
                    countIf(type = 'event') AS events, \
                    uniqExactIf(visitor_id, visitor_id != 0) AS visitors \
             FROM {audience} WHERE site = ? AND ts >= toDateTime(?) AND ts < toDateTime(?)"
        ))
        .bind(site)
        .bind(from)
        .bind(to)
        .fetch_one()
        .await?;
    let bot_hits: u64 = client
        .query(&format!(
            "SELECT count() FROM {} WHERE site = ? AND is_bot = 1 AND ts >= toDateTime(?) AND ts < toDateTime(?)",
            databases.troubleshooting_events()
        ))
        .bind(site)
        .bind(from)
        .bind(to)
        .fetch_one()
        .await?;
    let top_pages = client
        .query(&format!(
            "SELECT path, count() AS pageviews, uniqExactIf(visitor_id, visitor_id != 0) AS visitors \
             FROM {audience} WHERE site = ? AND type = 'pageview' AND ts >= toDateTime(?) AND ts < toDateTime(?) \
             GROUP BY path ORDER BY pageviews DESC, path LIMIT ?"
        ))
        .bind(site)
        .bind(from)
        .bind(to)
        .bind(top)
        .fetch_all::<PageStats>()
        .await?;
    Ok(Stats {
        site: site.to_owned(),
        from,
        to,
        pageviews: totals.pageviews,
        anonymous_pageviews: totals.anonymous_pageviews,
        events: totals.events,
        visitors: totals.visitors,
        bot_hits,
        top_pages,
    })
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "site {}  from {}  to {}", self.site, self.from, self.to)?;
        writeln!(f, "pageviews  {:>10}  (anonymous {})", self.pageviews, self.anonymous_pageviews)?;
        writeln!(f, "visitors   {:>10}", self.visitors)?;
        writeln!(f, "events     {:>10}", self.events)?;
        writeln!(f, "bot hits   {:>10}", self.bot_hits)?;
        writeln!(f, "top pages:")?;
        for page in &self.top_pages {
            writeln!(f, "  {:>8} views {:>8} visitors  {}", page.pageviews, page.visitors, page.path)?;
        }
        Ok(())
    }
}
