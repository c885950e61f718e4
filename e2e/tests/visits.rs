//! Visits as the rollups cut them (docs/dashboards.md, "What the numbers mean"), on crafted beacon sequences
//! written into the audience store of the real server: each case is a site of its own with
//! two visitors who do the same thing, so that its groups reach k = 2.

use e2e::{
    Install,
    seed::{self, Beacon},
};
use serde_json::json;

/// What a case's two visitors should add up to.
#[derive(Debug, PartialEq, Eq)]
struct Totals {
    visits: u64,
    pageviews: u64,
    events: u64,
    bounces: u64,
    duration_s: u64,
}

struct Case {
    site: &'static str,
    /// `(kind, time, path)` of one visitor's beacons on day D (times past 24:00 are day D + 1).
    beacons: &'static [(&'static str, &'static str, &'static str)],
    /// Per visitor.
    expected: Totals,
    /// Per visitor: `(path, entries, exits)`.
    pages: &'static [(&'static str, u64, u64)],
}

const CASES: &[Case] = &[
    Case {
        site: "gap30m",
        beacons: &[("pageview", "10:00:00", "/a"), ("pageview", "10:30:00", "/b")],
        expected: Totals { visits: 1, pageviews: 2, events: 0, bounces: 0, duration_s: 1800 },
        pages: &[("/a", 1, 0), ("/b", 0, 1)],
    },
    Case {
        site: "gap30m1s",
        beacons: &[("pageview", "10:00:00", "/a"), ("pageview", "10:30:01", "/b")],
        expected: Totals { visits: 2, pageviews: 2, events: 0, bounces: 2, duration_s: 0 },
        pages: &[("/a", 1, 1), ("/b", 1, 1)],
    },
    Case {
        site: "eventonly",
        beacons: &[("event", "10:00:00", "/a")],
        expected: Totals { visits: 1, pageviews: 0, events: 1, bounces: 0, duration_s: 0 },
        pages: &[("/a", 1, 1)],
    },
    Case {
        site: "single",
        beacons: &[("pageview", "10:00:00", "/a")],
        expected: Totals { visits: 1, pageviews: 1, events: 0, bounces: 1, duration_s: 0 },
        pages: &[("/a", 1, 1)],
    },
    Case {
        site: "pageandevent",
        beacons: &[("pageview", "10:00:00", "/a"), ("event", "10:00:00", "/a")],
        expected: Totals { visits: 1, pageviews: 1, events: 1, bounces: 0, duration_s: 0 },
        pages: &[("/a", 1, 1)],
    },
    Case {
        site: "hourly",
        beacons: &[("pageview", "10:50:00", "/a"), ("pageview", "11:10:00", "/b")],
        expected: Totals { visits: 1, pageviews: 2, events: 0, bounces: 0, duration_s: 1200 },
        pages: &[("/a", 1, 0), ("/b", 0, 1)],
    },
];

#[test]
fn visits_are_runs_with_gaps_of_at_most_30_minutes() {
    let install = Install::new("visits");
    install.configure_aggregator("[privacy]\nmin_group_size = 2\n");
    let day = seed::today() - 2;
    let mut beacons = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        for visitor in [1, 2] {
            let id = 100 * i as u64 + visitor;
            for (kind, time, path) in case.beacons {
                beacons.push(Beacon::new(kind, case.site, day, time, id, path).with("name", json!("e")));
            }
        }
    }
    // Cookie mode across midnight: ten minutes apart, but on two days.
    for cookie in [7, 8] {
        beacons.push(Beacon::pageview("midnight", day, "23:55:00", cookie, "/a").cookie(cookie));
        beacons.push(Beacon::pageview("midnight", day + 1, "00:05:00", cookie + 10, "/b").cookie(cookie));
    }
    seed::insert(&install, &install.audience(), &beacons);
    let out = install.aggregator(&["rollups", "--days", "4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let rollups = format!("{}_rollups", install.prefix);
    for case in CASES {
        let rows = install.sql_rows(&format!(
            "SELECT visitors, visits, pageviews, events, bounces, duration_s FROM {rollups}.daily_totals \
             WHERE site = '{}' AND date = '{}'",
            case.site,
            seed::date(day)
        ));
        assert_eq!(rows.len(), 1, "{}: {rows:?}", case.site);
        let get = |column: &str| seed::number(&rows[0][column]).unwrap() as u64;
        assert_eq!(get("visitors"), 2, "{}", case.site);
        let per_visitor = Totals {
            visits: get("visits") / 2,
            pageviews: get("pageviews") / 2,
            events: get("events") / 2,
            bounces: get("bounces") / 2,
            duration_s: get("duration_s") / 2,
        };
        assert_eq!(per_visitor, case.expected, "{}", case.site);
        let pages = install.sql_rows(&format!(
            "SELECT path, entries, exits FROM {rollups}.daily_pages WHERE site = '{}' ORDER BY path",
            case.site
        ));
        let pages: Vec<(String, u64, u64)> = pages
            .iter()
            .map(|r| {
                let n = |c: &str| seed::number(&r[c]).unwrap() as u64 / 2;
                (r["path"].as_str().unwrap().to_owned(), n("entries"), n("exits"))
            })
            .collect();
        let expected: Vec<(String, u64, u64)> = case.pages.iter().map(|(p, e, x)| (p.to_string(), *e, *x)).collect();
        assert_eq!(pages, expected, "{}", case.site);
    }

    // A visit counts in the hour it starts, with all its pageviews.
    let hourly = install.sql(&format!(
        "SELECT toHour(hour), visits, pageviews FROM {rollups}.hourly_totals WHERE site = 'hourly' FORMAT TSV"
    ));
    assert_eq!(hourly, "10\t2\t4\n");

    // Across midnight a visit is cut in two, one on each day: the second starts at 00:05.
    let midnight = install.sql(&format!(
        "SELECT date, visits, bounces FROM {rollups}.daily_totals WHERE site = 'midnight' ORDER BY date FORMAT TSV"
    ));
    assert_eq!(midnight, format!("{}\t2\t2\n{}\t2\t2\n", seed::date(day), seed::date(day + 1)));
}
