//! The analysts' rollup tables of `0004_visits.sql`: what each counts and by which
//! dimensions. The aggregator builds its refresh queries from this list
//! (aggregator/src/rollups.rs); the e2e suite checks it against `DESCRIBE TABLE`. The metric
//! definitions are in docs/dashboards.md.

/// The rows a rollup counts, which fixes its measure columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measures {
    /// Visits and the anonymous views outside them: every headline number.
    Totals,
    /// Pageviews of a page, and the visits that entered, left or bounced there.
    Pages,
    /// Visits, grouped by what is known when a visit starts (source, location, technology).
    Visits,
    /// Custom events.
    Events,
}

impl Measures {
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Measures::Totals => {
                &["visitors", "visits", "pageviews", "anonymous_pageviews", "events", "bounces", "duration_s"]
            }
            Measures::Pages => &["visitors", "pageviews", "entries", "exits", "bounces"],
            Measures::Visits => &["visitors", "visits", "pageviews", "bounces", "duration_s"],
            Measures::Events => &["visitors", "events"],
        }
    }
}

/// The time column of a rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// `date Date`: the UTC day.
    Daily,
    /// `hour DateTime('UTC')`: the start of the UTC hour a visit starts in.
    Hourly,
}

impl Grain {
    pub fn column(self) -> &'static str {
        match self {
            Grain::Daily => "date",
            Grain::Hourly => "hour",
        }
    }
}

/// One `{rollups}.<table>`: `<grain>, site, <dimensions>, <measures>`.
#[derive(Debug, Clone, Copy)]
pub struct Rollup {
    pub table: &'static str,
    pub grain: Grain,
    /// The columns it groups by besides time and site.
    pub dimensions: &'static [&'static str],
    pub measures: Measures,
}

impl Rollup {
    /// The table's columns in order.
    pub fn columns(&self) -> Vec<&'static str> {
        let mut columns = vec![self.grain.column(), "site"];
        columns.extend_from_slice(self.dimensions);
        columns.extend_from_slice(self.measures.columns());
        columns
    }
}

const fn daily(table: &'static str, dimensions: &'static [&'static str], measures: Measures) -> Rollup {
    Rollup { table, grain: Grain::Daily, dimensions, measures }
}

pub const ROLLUPS: &[Rollup] = &[
    daily("daily_totals", &[], Measures::Totals),
    Rollup { table: "hourly_totals", grain: Grain::Hourly, dimensions: &[], measures: Measures::Totals },
    daily("daily_pages", &["host", "path"], Measures::Pages),
    daily("daily_channels", &["channel"], Measures::Visits),
    daily("daily_referrers", &["ref_host"], Measures::Visits),
    daily("daily_campaigns", &["utm_source", "utm_medium", "utm_campaign"], Measures::Visits),
    // One table per level: a country's visitors are not the sum of its cities' groups that
    // reach k.
    daily("daily_countries", &["country"], Measures::Visits),
    daily("daily_regions", &["country", "region"], Measures::Visits),
    daily("daily_cities", &["country", "region", "city"], Measures::Visits),
    daily("daily_browsers", &["browser"], Measures::Visits),
    daily("daily_os", &["os"], Measures::Visits),
    daily("daily_devices", &["device"], Measures::Visits),
    daily("daily_screens", &["screen_class"], Measures::Visits),
    daily("daily_events", &["name"], Measures::Events),
    daily("daily_event_props", &["name", "prop_key", "prop_value"], Measures::Events),
];

/// `{rollups}.current_visitors`: distinct visitors of the last [`CURRENT_WINDOW_S`] seconds
/// per site, written every minute; 0 when fewer than k.
pub const CURRENT_VISITORS_TABLE: &str = "current_visitors";

/// What "current" means for [`CURRENT_VISITORS_TABLE`].
pub const CURRENT_WINDOW_S: u32 = 300;

/// Beacons of one visitor further apart than this start a new visit.
pub const VISIT_GAP_S: u32 = 1_800;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_unique_and_name_their_grain() {
        let mut names: Vec<_> = ROLLUPS.iter().map(|r| r.table).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ROLLUPS.len());
        for r in ROLLUPS {
            let prefix = match r.grain {
                Grain::Daily => "daily_",
                Grain::Hourly => "hourly_",
            };
            assert!(r.table.starts_with(prefix), "{}", r.table);
        }
    }
}
