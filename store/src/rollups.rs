//! The analysts' rollup tables of `0003_roles.sql`: what each counts and by which audience
//! columns. The aggregator builds its refresh queries from this list; the e2e suite checks the
//! list against `DESCRIBE TABLE`.

use crate::EventType;

/// One `{rollups}.<table>`: `date, site, <dimensions>, <measure>, visitors`.
#[derive(Debug, Clone, Copy)]
pub struct Rollup {
    pub table: &'static str,
    /// Columns of the audience events table, copied as they are.
    pub dimensions: &'static [&'static str],
    /// The event type counted.
    pub kind: EventType,
}

impl Rollup {
    /// The name of the count column: `pageviews` or `events`.
    pub fn measure(&self) -> &'static str {
        match self.kind {
            EventType::Event => "events",
            _ => "pageviews",
        }
    }

    /// The table's columns in order.
    pub fn columns(&self) -> Vec<&'static str> {
        let mut columns = vec!["date", "site"];
        columns.extend_from_slice(self.dimensions);
        columns.extend([self.measure(), "visitors"]);
        columns
    }
}

pub const ROLLUPS: &[Rollup] = &[
    Rollup { table: "daily_totals", dimensions: &[], kind: EventType::Pageview },
    Rollup { table: "daily_pages", dimensions: &["host", "path"], kind: EventType::Pageview },
    Rollup { table: "daily_referrers", dimensions: &["ref_host"], kind: EventType::Pageview },
    Rollup {
        table: "daily_campaigns",
        dimensions: &["utm_source", "utm_medium", "utm_campaign"],
        kind: EventType::Pageview,
    },
    Rollup { table: "daily_locations", dimensions: &["country", "region", "city"], kind: EventType::Pageview },
    Rollup { table: "daily_technology", dimensions: &["browser", "os", "device"], kind: EventType::Pageview },
    Rollup { table: "daily_events", dimensions: &["name"], kind: EventType::Event },
];
