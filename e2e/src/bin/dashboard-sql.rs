//! Prints every ClickHouse query of the dashboards as the plugin would send it, one a line:
//! `<role>\t<dashboard / panel / refId>\t<SQL>`. The chdb check runs them on current
//! ClickHouse; benches/dashboards.sh times them.

use e2e::grafana::{self, Range, VarValue, Vars};

const USAGE: &str = "usage: dashboard-sql [--prefix P] [--from-day N] [--to-day N] [--site S]
  --prefix    the installation's database prefix (default webstats)
  --from-day  first day of the time range, days since 1970-01-01 (default: 6 days before --to-day)
  --to-day    last day (default: today, UTC)
  --site      the site variable (default: All)";

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut prefix, mut from, mut to, mut site) = ("webstats".to_owned(), None, None, None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| fail(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--prefix" => prefix = value(),
            "--from-day" => from = Some(day(&value())),
            "--to-day" => to = Some(day(&value())),
            "--site" => site = Some(value()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let to = to.unwrap_or_else(e2e::seed::today);
    let range = Range::days(from.unwrap_or(to.saturating_sub(6)), to);
    let site = match site {
        Some(s) => VarValue::One(s),
        None => VarValue::All { all_value: None, options: vec![] },
    };
    for dashboard in grafana::dashboards().iter().filter(|d| d.datasource_type() == grafana::CLICKHOUSE) {
        let vars = Vars::defaults(dashboard).one("prefix", &prefix).set("site", site.clone());
        for query in dashboard.queries() {
            let sql =
                grafana::expand_sql(&query, &vars, range).unwrap_or_else(|e| fail(&format!("{}: {e}", query.origin)));
            println!("{}\t{}\t{sql}", dashboard.role().name(), query.origin);
        }
    }
}

fn day(text: &str) -> u16 {
    text.parse().unwrap_or_else(|_| fail(&format!("{text:?} is not a day number")))
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}\n{USAGE}");
    std::process::exit(2)
}
