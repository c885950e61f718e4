//! The snippet in a real browser: headless Chromium (through chromedriver) loads test pages
//! served from `shop.test` by a server inside the test, the snippet comes cross-origin from
//! the real collector, and the rows are read back from the real ClickHouse.
//!
//! Each test has its own installation, collector, page server and browser, and its own site,
//! so they cannot see each other's beacons. Absence is always proved against a positive
//! control: a later beacon of the same browser that did arrive, and the collector's count of
//! requests to its beacon endpoint.
//!
//! Headless Chromium says `HeadlessChrome` in its User-Agent, which the collector's built-in
//! bot patterns keep out of the audience store, so the browser here sends an ordinary Chrome's
//! User-Agent (`e2e::browser`): the visitor these tests play is a person.

use std::time::{Duration, Instant};

use e2e::{
    Collector, Install,
    browser::{Browser, Pages},
};
use serde_json::{Value, json};

/// The page host: mapped to 127.0.0.1 in Chromium, and not `localhost`, so the snippet needs
/// no `data-local`.
const HOST: &str = "shop.test";
const COOKIE_KEY: &str = "browser-test-cookie-key-0123456789abcdef";
const COOKIE_DAYS: u64 = 30;

/// One site per scenario.
fn sites() -> String {
    format!(
        r#"
[[sites]]
id = "shop"
allowed_hosts = ["shop.test"]

[[sites]]
id = "gpc"
allowed_hosts = ["shop.test"]
# Cookie mode too: under GPC no cookie may be set or sent either.
cookie_mode = true

[[sites]]
id = "gpcdrop"
allowed_hosts = ["shop.test"]
do_not_track = "drop"

[[sites]]
id = "optout"
allowed_hosts = ["shop.test"]

[[sites]]
id = "links"
allowed_hosts = ["shop.test"]

[[sites]]
id = "cookies"
allowed_hosts = ["shop.test"]
cookie_mode = true
cookie_days = {COOKIE_DAYS}

[[sites]]
id = "automated"
allowed_hosts = ["shop.test"]
"#
    )
}

const SITE_IDS: [&str; 7] = ["shop", "gpc", "gpcdrop", "optout", "links", "cookies", "automated"];

/// The statement of the error page that throws on a click: `error_line` is its line.
const BOOM: &str = "throw new Error('e2e boom')";

/// A page of the test site at `target` (`/<site>/<page>?query`), embedding the snippet from
/// the collector on `collector_port`. `?gpc=1` turns Global Privacy Control on, `?optout=1`
/// sets the local opt-out, `?optin=1` clears it: each by a script that runs before the
/// snippet's tag.
fn page(collector_port: u16, target: &str) -> Option<String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (site, name) = (parts.next()?, parts.next()?);
    if !SITE_IDS.contains(&site) || name.is_empty() {
        return None;
    }
    let flag = |f: &str| query.split('&').any(|pair| pair == f);
    let mut before = String::new();
    if flag("gpc=1") {
        before.push_str(
            "<script>Object.defineProperty(Navigator.prototype,'globalPrivacyControl',{get:()=>true})</script>\n",
        );
    }
    if flag("optout=1") {
        before.push_str("<script>localStorage.setItem('webstats_optout','1')</script>\n");
    }
    if flag("optin=1") {
        before.push_str("<script>localStorage.removeItem('webstats_optout')</script>\n");
    }
    let body = match name {
        "home" => format!(
            "<p>Welcome to the test shop. This paragraph is the page's contentful paint.</p>\n\
             <button id=\"cta\" data-webstats-event=\"upgrade\" data-webstats-prop-plan=\"team\">\
             <span id=\"cta-label\">Upgrade</span></button>\n\
             <a id=\"next\" href=\"/{site}/second\">Next</a>\n"
        ),
        // The page's own code throws: errors of code that WebDriver injects are muted
        // ("Script error.", and no unhandledrejection at all), as for a cross-origin script.
        "error" => format!(
            "<p>This page has broken buttons.</p>\n\
             <button id=\"boom\">Break</button>\n\
             <button id=\"reject\">Reject</button>\n\
             <button id=\"burst\">Six errors</button>\n\
             <a id=\"next\" href=\"/{site}/second\">Next</a>\n\
             <script>\n\
             window.thrown = 0;\n\
             function on(id, f) {{ document.getElementById(id).addEventListener('click', f); }}\n\
             on('boom', function () {{\n\
             {BOOM};\n\
             }});\n\
             on('reject', function () {{ Promise.reject(new Error('e2e rejected')); }});\n\
             on('burst', function () {{\n\
             [0, 1, 2, 3, 4, 5].forEach(function (i) {{\n\
             setTimeout(function () {{ window.thrown++; throw new Error('e2e burst ' + i); }}, 10 * i);\n\
             }});\n\
             }});\n\
             </script>\n"
        ),
        // Links the snippet tracks with data-outbound and data-downloads; each click is kept on
        // the page (preventDefault), which does not stop the snippet's listener.
        "links" => format!(
            "<a id=\"out\" href=\"https://elsewhere.test/offer?ref=shop\" onclick=\"event.preventDefault()\">Offer</a>\n\
             <a id=\"file\" href=\"/{site}/files/report.pdf\" onclick=\"event.preventDefault()\">Report</a>\n\
             <a id=\"inner\" href=\"/{site}/second\" onclick=\"event.preventDefault()\">Inner</a>\n"
        ),
        _ => format!("<p>Page {name} of the test shop.</p>\n<a id=\"next\" href=\"/{site}/home\">Home</a>\n"),
    };
    // Every site but `automated` counts this automated browser as a visitor.
    let webdriver = if site == "automated" { "" } else { " data-webdriver" };
    let tracking = if site == "links" { " data-outbound data-downloads" } else { "" };
    Some(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{site} {name}</title>\n{before}\
         <script defer src=\"http://127.0.0.1:{collector_port}/script.js\" data-site=\"{site}\"{webdriver}{tracking}></script>\n\
         </head>\n<body>\n<h1>{name}</h1>\n{body}</body>\n</html>\n"
    ))
}

/// The 1-based line of `needle` in the page at `target`.
fn line_of(collector_port: u16, target: &str, needle: &str) -> u64 {
    let html = page(collector_port, target).unwrap();
    html.lines().position(|l| l.contains(needle)).expect("the page has the line") as u64 + 1
}

/// A test's world. Fields drop in order: the browser first, the installation last.
struct World {
    browser: Browser,
    pages: Pages,
    collector: Collector,
    install: Install,
    started: Instant,
    name: &'static str,
}

impl World {
    fn start(name: &'static str) -> Self {
        let started = Instant::now();
        let install = Install::new(name);
        let collector = install.collector_with(
            &format!("[sink]\nflush_interval_ms = 200\n{}", sites()),
            &[("WEBSTATS_COOKIE_KEY", COOKIE_KEY)],
        );
        collector.wait_until(|c| c.try_get("/readyz").is_some_and(|r| r.0 == 200), "/readyz");
        let port = collector.addr.port();
        let pages = Pages::serve(move |target| page(port, target));
        let browser = Browser::start(&[HOST]);
        eprintln!("{name}: set up in {:?} ({})", started.elapsed(), browser.version());
        World { browser, pages, collector, install, started, name }
    }

    fn url(&self, target: &str) -> String {
        format!("http://{HOST}:{}{target}", self.pages.port())
    }

    /// Loads `target` and waits until the snippet has run (its API is installed).
    fn open(&self, target: &str) {
        self.browser.goto(&self.url(target));
        self.browser.wait_for(
            "document.readyState == 'complete' && typeof window.webstats == 'function'",
            Duration::from_secs(10),
            &format!("the snippet on {target}"),
        );
    }

    /// Leaves the page (which sends its timing beacon, if any).
    fn leave(&self) {
        self.browser.goto("about:blank");
    }

    /// Requests the collector's beacon endpoints answered (POST, GIF and preflights).
    fn beacon_requests(&self) -> f64 {
        let name = "webstats_collector_http_requests_total";
        self.collector.metric_sum(name, &[("endpoint", "event")])
            + self.collector.metric_sum(name, &[("endpoint", "event_gif")])
    }

    fn accepted(&self, kind: &str) -> f64 {
        self.collector.metric_sum("webstats_collector_beacons_accepted_total", &[("type", kind)])
    }

    /// Waits until the collector has accepted `n` beacons of `kind` (this test's only).
    fn wait_accepted(&self, kind: &str, n: f64) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.accepted(kind) < n {
            if Instant::now() > deadline {
                self.fail(&format!("the collector accepted {} {kind} beacons, expected {n}", self.accepted(kind)));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Rows of `select` (`{audience}` and `{trouble}` stand for the tables), polled until
    /// there are at least `n`, 20 s at most.
    fn wait_rows(&self, select: &str, n: usize) -> Vec<Value> {
        let query = self.query(select);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let rows = self.install.sql_rows(&query);
            if rows.len() >= n {
                return rows;
            }
            if Instant::now() > deadline {
                self.fail(&format!("expected at least {n} rows, got {}: {query}\n{rows:#?}", rows.len()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn rows(&self, select: &str) -> Vec<Value> {
        self.install.sql_rows(&self.query(select))
    }

    fn query(&self, select: &str) -> String {
        select.replace("{audience}", &self.install.audience()).replace("{trouble}", &self.install.troubleshooting())
    }

    /// Lets anything already sent reach ClickHouse: a few flush intervals.
    fn settle(&self) {
        std::thread::sleep(Duration::from_millis(800));
    }

    /// Panics with `what` and everything that helps to see why.
    fn fail(&self, what: &str) -> ! {
        // The collector's own lines (its dependencies' debug lines are noise here).
        let log = self.collector.log_text();
        let own: Vec<&str> = log.lines().filter(|l| l.contains(" collector::")).collect();
        let tail = own[own.len().saturating_sub(30)..].join("\n");
        let metrics = self.collector.get("/metrics").1;
        let beacons: Vec<&str> = metrics.lines().filter(|l| l.starts_with("webstats_collector_beacons_")).collect();
        panic!(
            "{}: {what}\n--- pages served: {:#?}\n--- browser at {}\n--- chromedriver log (tail):\n{}\n\
             --- collector beacon metrics:\n{}\n--- collector log (tail):\n{tail}",
            self.name,
            self.pages.requests(),
            self.browser.current_url(),
            self.browser.driver_log_tail(),
            beacons.join("\n"),
        )
    }

    fn done(&self) {
        eprintln!("{}: passed in {:?}", self.name, self.started.elapsed());
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// A row's props as sorted `key=value` pairs.
fn props(row: &Value) -> Vec<String> {
    let keys = row["prop_keys"].as_array().unwrap();
    let values = row["prop_values"].as_array().unwrap();
    let mut pairs: Vec<String> = keys.iter().zip(values).map(|(k, v)| format!("{}={}", s(k), s(v))).collect();
    pairs.sort();
    pairs
}

/// ClickHouse's JSON gives UInt64 as a string.
fn u64_of(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        v => v.as_u64().unwrap(),
    }
}

#[test]
fn pageviews_spa_navigation_events_errors_and_timing_arrive_with_their_fields() {
    let w = World::start("browser_spa");
    let b = &w.browser;
    let pageviews = "SELECT path, ref_host, ref_path, host, visitor_id, screen_width, lang, browser FROM {audience} \
                     WHERE site = 'shop' AND type = 'pageview' ORDER BY ts, path";

    // The first pageview.
    w.open("/shop/home");
    let first = w.wait_rows(pageviews, 1);
    assert_eq!(s(&first[0]["path"]), "/shop/home", "{first:#?}");
    assert_eq!(s(&first[0]["host"]), HOST);
    assert_eq!(s(&first[0]["ref_path"]), "", "a typed navigation has no referrer");
    assert_ne!(u64_of(&first[0]["visitor_id"]), 0);
    assert!(first[0]["screen_width"].as_u64().unwrap() > 0, "{first:#?}");
    assert!(!s(&first[0]["lang"]).is_empty(), "{first:#?}");

    // SPA navigations: two pushStates to new URLs, the same URL pushed and replaced again
    // (no pageview), then back (popstate to a URL that differs from the current one: a
    // pageview) and back again (popstate to the same URL: none).
    b.execute(
        "history.pushState({}, '', '/shop/products');\n\
         history.pushState({}, '', '/shop/products');\n\
         history.replaceState({}, '', '/shop/products');\n\
         history.pushState({}, '', '/shop/cart');",
    );
    b.execute("history.back();");
    b.wait_for("location.pathname == '/shop/products'", Duration::from_secs(5), "popstate to /shop/products");
    b.execute("window.__popped = 0; addEventListener('popstate', function () { window.__popped++; }); history.back();");
    b.wait_for("window.__popped == 1", Duration::from_secs(5), "the second popstate");
    assert!(b.current_url().ends_with("/shop/products"), "{}", b.current_url());

    // Custom events: through the API, and declaratively (a click inside the tagged element).
    b.execute("webstats('event', 'signup', {plan: 'pro'});");
    b.click("#cta-label");

    // A page with errors: one thrown three times (one beacon), an unhandled rejection, then six
    // more distinct errors (only the first three fit the cap of five per page). Going there
    // sends the first page's timing.
    w.open("/shop/error");
    for _ in 0..3 {
        b.click("#boom");
    }
    b.click("#reject");
    b.click("#burst");
    b.wait_for("window.thrown == 6", Duration::from_secs(5), "six thrown errors");
    // Leaving by a link: the next page has a referrer, and the error page sends its timing.
    b.click("#next");
    b.wait_for(
        "location.pathname == '/shop/second' && document.readyState == 'complete' && typeof webstats == 'function'",
        Duration::from_secs(10),
        "the second page",
    );

    // Everything arrives: 6 pageviews, 2 events, 5 errors, 2 timings.
    let events = "SELECT name, path, prop_keys, prop_values FROM {audience} WHERE site = 'shop' AND type = 'event' ORDER BY name";
    let errors = "SELECT error_message, error_source, error_line, error_col, path FROM {trouble} \
                  WHERE site = 'shop' AND type = 'error' ORDER BY error_message";
    let timings = "SELECT path, ttfb_ms, fcp_ms, dcl_ms, load_ms, lcp_ms, cls, inp_ms FROM {trouble} \
                   WHERE site = 'shop' AND type = 'timing' ORDER BY path";
    w.wait_rows(pageviews, 6);
    w.wait_rows(events, 2);
    w.wait_rows(errors, 5);
    w.wait_rows(timings, 2);
    w.settle();

    // Pageviews: each URL change once, with the previous URL as referrer.
    let pageviews = w.rows(pageviews);
    let mut seen: Vec<(String, String)> =
        pageviews.iter().map(|r| (s(&r["path"]).to_owned(), s(&r["ref_path"]).to_owned())).collect();
    seen.sort();
    let expected: Vec<(String, String)> = [
        ("/shop/cart", "/shop/products"),
        ("/shop/error", ""),
        ("/shop/home", ""),
        ("/shop/products", "/shop/cart"),
        ("/shop/products", "/shop/home"),
        ("/shop/second", "/shop/error"),
    ]
    .iter()
    .map(|(p, r)| (p.to_string(), r.to_string()))
    .collect();
    assert_eq!(seen, expected, "pageviews (path, ref_path): {pageviews:#?}");
    for row in &pageviews {
        if !s(&row["ref_path"]).is_empty() {
            assert_eq!(s(&row["ref_host"]), HOST, "{row}");
        }
    }
    let visitors: std::collections::HashSet<u64> = pageviews.iter().map(|r| u64_of(&r["visitor_id"])).collect();
    assert_eq!(visitors.len(), 1, "one browser, one visitor: {pageviews:#?}");

    // Events: name, props, and the page they happened on.
    let events = w.rows(events);
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!((s(&events[0]["name"]), s(&events[0]["path"])), ("signup", "/shop/products"), "{events:#?}");
    assert_eq!(props(&events[0]), ["plan=pro"], "{events:#?}");
    assert_eq!((s(&events[1]["name"]), s(&events[1]["path"])), ("upgrade", "/shop/products"), "{events:#?}");
    assert_eq!(props(&events[1]), ["plan=team"], "{events:#?}");

    // Errors: deduplicated, at most five per page, with message, source and line.
    let errors = w.rows(errors);
    let messages: Vec<&str> = errors.iter().map(|r| s(&r["error_message"])).collect();
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert_eq!(messages.iter().filter(|m| m.contains("e2e boom")).count(), 1, "{messages:?}");
    assert_eq!(messages.iter().filter(|m| m.contains("e2e rejected")).count(), 1, "{messages:?}");
    assert_eq!(messages.iter().filter(|m| m.contains("e2e burst")).count(), 3, "{messages:?}");
    for i in 0..3 {
        assert!(messages.iter().any(|m| m.contains(&format!("e2e burst {i}"))), "the first three: {messages:?}");
    }
    let boom = errors.iter().find(|r| s(&r["error_message"]).contains("e2e boom")).unwrap();
    assert!(s(&boom["error_source"]).contains("/shop/error"), "the page's inline script: {boom}");
    assert_eq!(boom["error_line"].as_u64(), Some(line_of(w.collector.addr.port(), "/shop/error", BOOM)), "{boom}");
    assert!(errors.iter().all(|r| s(&r["path"]) == "/shop/error"), "{errors:#?}");

    // Timing: one per page load, named after the page as loaded.
    let timings = w.rows(timings);
    let paths: Vec<&str> = timings.iter().map(|r| s(&r["path"])).collect();
    assert_eq!(paths, ["/shop/error", "/shop/home"], "{timings:#?}");
    for row in &timings {
        for column in ["ttfb_ms", "fcp_ms", "dcl_ms", "load_ms"] {
            assert!(row[column].as_u64().is_some(), "{column} is null: {row}");
        }
        let (ttfb, dcl, load) =
            (row["ttfb_ms"].as_u64().unwrap(), row["dcl_ms"].as_u64().unwrap(), row["load_ms"].as_u64().unwrap());
        assert!(ttfb <= dcl && dcl <= load && load < 15_000, "ttfb <= dcl <= load: {row}");
    }
    eprintln!("timing rows: {timings:?}");

    // Every beacon came in as the contract wants: nothing refused.
    let rejected = w.collector.metric_sum("webstats_collector_beacons_rejected_total", &[]);
    assert_eq!(rejected, 0.0, "refused beacons; collector log:\n{}", w.collector.log_text());
    w.done();
}

#[test]
fn global_privacy_control_is_counted_anonymously_or_sends_nothing_as_the_site_says() {
    let w = World::start("browser_gpc");
    let b = &w.browser;

    // "anonymous": the pageviews arrive with no visitor or cookie id, the timing beacons are
    // sent but stored nowhere (counted as dropped), and no cookie is set although the site is
    // in cookie mode.
    w.open("/gpc/home?gpc=1");
    assert_eq!(b.execute("return navigator.globalPrivacyControl;"), Value::Bool(true));
    assert!(b.cookie("_wsid").is_none(), "no cookie under GPC: {:?}", b.cookie("_wsid"));
    w.open("/gpc/next?gpc=1");
    w.leave();
    let views = "SELECT path, visitor_id, cookie_id FROM {audience} WHERE site = 'gpc' ORDER BY path";
    let views = w.wait_rows(views, 2);
    w.wait_accepted("timing", 2.0);
    w.settle();
    let views_now = w.rows("SELECT path, visitor_id, cookie_id FROM {audience} WHERE site = 'gpc' ORDER BY path");
    assert_eq!(views_now, views, "only the two pageviews");
    let paths: Vec<&str> = views.iter().map(|r| s(&r["path"])).collect();
    assert_eq!(paths, ["/gpc/home", "/gpc/next"], "{views:#?}");
    for row in &views {
        assert_eq!((u64_of(&row["visitor_id"]), u64_of(&row["cookie_id"])), (0, 0), "anonymous: {row}");
    }
    let trouble = w.rows("SELECT type, path FROM {trouble} WHERE site = 'gpc'");
    assert!(trouble.is_empty(), "no troubleshooting row under GPC: {trouble:#?}");
    let dropped = || {
        w.collector
            .metric_sum("webstats_collector_beacons_dropped_total", &[("reason", "do_not_track"), ("site", "gpc")])
    };
    assert_eq!(dropped(), 2.0, "the two timing beacons, which have no anonymous row to keep");

    // "drop": the snippet sends nothing at all. The control: the same site without GPC.
    let before = w.beacon_requests();
    w.open("/gpcdrop/private?gpc=1");
    b.execute("history.pushState({}, '', '/gpcdrop/private-spa'); webstats('event', 'private');");
    w.open("/gpcdrop/public");
    let control = w.wait_rows("SELECT path FROM {audience} WHERE site = 'gpcdrop'", 1);
    w.leave();
    w.wait_accepted("timing", 3.0);
    w.settle();
    assert_eq!(control, w.rows("SELECT path FROM {audience} WHERE site = 'gpcdrop'"), "only the control's pageview");
    assert_eq!(s(&control[0]["path"]), "/gpcdrop/public");
    let private = w.rows("SELECT type, path FROM {trouble} WHERE site = 'gpcdrop' AND path LIKE '/gpcdrop/private%'");
    assert!(private.is_empty(), "{private:#?}");
    assert_eq!(w.beacon_requests() - before, 2.0, "the control's pageview and timing, nothing from the GPC page");
    // The GPC page sent nothing at all, so the collector dropped nothing more.
    assert_eq!(dropped(), 2.0);
    w.done();
}

/// Without `data-webdriver` the snippet reports the automation it sees (chromedriver sets
/// `navigator.webdriver`): the collector keeps the beacon out of the audience and says why.
/// The control, a site with `data-webdriver`, shows that the same browser's beacons carry what
/// browsers send (an `Origin`), so that no other signal fires.
#[test]
fn an_automated_browser_is_kept_out_of_the_audience_with_its_reason() {
    let w = World::start("browser_automated");
    w.open("/automated/home");
    w.open("/shop/control");
    let control =
        w.wait_rows("SELECT path, is_bot, bot_reason FROM {trouble} WHERE site = 'shop' AND type = 'pageview'", 1);
    assert_eq!(control, [json!({"path": "/shop/control", "is_bot": 0, "bot_reason": ""})]);
    w.wait_rows("SELECT path FROM {audience} WHERE site = 'shop'", 1);
    let automated =
        w.wait_rows("SELECT path, is_bot, bot_reason FROM {trouble} WHERE site = 'automated' AND type = 'pageview'", 1);
    assert_eq!(automated, [json!({"path": "/automated/home", "is_bot": 1, "bot_reason": "automation:webdriver"})]);
    assert_eq!(w.rows("SELECT path FROM {audience} WHERE site = 'automated'"), [] as [Value; 0]);
    w.done();
}

#[test]
fn a_local_opt_out_sends_nothing_until_opted_in() {
    let w = World::start("browser_optout");
    let b = &w.browser;

    // Opted out before the snippet runs: no pageview, SPA pageview, event or timing.
    w.open("/optout/private?optout=1");
    b.execute("history.pushState({}, '', '/optout/private-spa'); webstats('event', 'private');");
    w.leave();
    // The control: a page that clears the flag before the snippet runs.
    w.open("/optout/public?optin=1");
    let control = w.wait_rows("SELECT path FROM {audience} WHERE site = 'optout'", 1);
    assert_eq!(s(&control[0]["path"]), "/optout/public", "{control:#?}");

    // The API: webstats('optout') stops the next SPA pageview, webstats('optin') resumes.
    b.execute("webstats('optout'); history.pushState({}, '', '/optout/hidden');");
    assert_eq!(b.execute("return localStorage.getItem('webstats_optout');"), Value::String("1".into()));
    b.execute("webstats('optin'); history.pushState({}, '', '/optout/shown');");
    w.wait_rows("SELECT path FROM {audience} WHERE site = 'optout' AND path = '/optout/shown'", 1);
    w.leave();
    w.wait_accepted("timing", 1.0);
    // Each table's rows are an insert of their own: the troubleshooting rows are waited for too.
    w.wait_rows("SELECT path FROM {trouble} WHERE site = 'optout'", 3);
    w.settle();

    let audience = w.rows("SELECT type, path, ref_path FROM {audience} WHERE site = 'optout' ORDER BY path");
    let seen: Vec<(&str, &str)> = audience.iter().map(|r| (s(&r["type"]), s(&r["path"]))).collect();
    assert_eq!(seen, [("pageview", "/optout/public"), ("pageview", "/optout/shown")], "{audience:#?}");
    // A page seen while opted out does not leak as the next page's referrer.
    assert_ne!(s(&audience[1]["ref_path"]), "/optout/hidden", "{audience:#?}");
    let trouble = w.rows("SELECT type, path FROM {trouble} WHERE site = 'optout' ORDER BY type, path");
    let seen: Vec<(&str, &str)> = trouble.iter().map(|r| (s(&r["type"]), s(&r["path"]))).collect();
    assert_eq!(
        seen,
        [("pageview", "/optout/public"), ("pageview", "/optout/shown"), ("timing", "/optout/public")],
        "{trouble:#?}"
    );
    // The collector saw those three beacons and nothing else.
    assert_eq!(w.beacon_requests(), 3.0);
    w.done();
}

#[test]
fn outbound_and_download_clicks_become_events_when_enabled() {
    let w = World::start("browser_links");
    let b = &w.browser;
    w.open("/links/links");
    w.wait_rows("SELECT path FROM {audience} WHERE site = 'links'", 1);
    for link in ["#out", "#file", "#inner"] {
        b.click(link);
    }
    let events = w.wait_rows(
        "SELECT name, prop_keys, prop_values FROM {audience} WHERE site = 'links' AND type = 'event' ORDER BY name",
        2,
    );
    w.settle();
    assert_eq!(
        events,
        w.rows(
            "SELECT name, prop_keys, prop_values FROM {audience} WHERE site = 'links' AND type = 'event' ORDER BY name"
        ),
        "a link to the same site is no event"
    );
    let seen: Vec<(&str, Vec<String>)> = events.iter().map(|r| (s(&r["name"]), props(r))).collect();
    assert_eq!(
        seen,
        [
            ("download", vec!["file=/links/files/report.pdf".to_owned()]),
            ("outbound", vec!["url=elsewhere.test/offer".to_owned()]),
        ],
        "{events:#?}"
    );
    w.done();
}

#[test]
fn cookie_mode_keeps_one_first_party_id_across_page_loads() {
    let w = World::start("browser_cookies");
    let b = &w.browser;

    w.open("/cookies/home");
    let first = w.wait_rows("SELECT path, cookie_id FROM {audience} WHERE site = 'cookies'", 1);
    let cookie = b.cookie("_wsid").unwrap_or_else(|| w.fail("no _wsid cookie after the first page"));
    let value = cookie.value().to_owned();
    assert!(value.len() == 32 && value.bytes().all(|c| c.is_ascii_hexdigit()), "a 32-hex id: {cookie:?}");
    assert_eq!(cookie.same_site().map(|s| s.to_string()).as_deref(), Some("Lax"), "{cookie:?}");
    // WebDriver reports a cookie set without SameSite as "Lax" too (Chrome's default), so ask
    // DevTools, which tells an attribute only when the cookie has one.
    let devtools = b.cdp("Network.getCookies", json!({ "urls": [w.url("/cookies/home")] }));
    let raw = devtools["cookies"].as_array().and_then(|all| all.iter().find(|c| c["name"] == "_wsid"));
    assert_eq!(raw.map(|c| &c["sameSite"]), Some(&json!("Lax")), "SameSite=Lax set explicitly: {devtools}");
    assert_eq!(cookie.path(), Some("/"), "{cookie:?}");
    assert!(!cookie.http_only().unwrap_or(false), "{cookie:?}");
    // Host-only, on the page's host (WebDriver reports the host as the domain).
    assert_eq!(cookie.domain().map(|d| d.trim_start_matches('.')), Some(HOST), "{cookie:?}");
    let expires = cookie.expires_datetime().unwrap_or_else(|| w.fail(&format!("a session cookie: {cookie:?}")));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let lifetime = expires.unix_timestamp() - now;
    assert!(
        (lifetime - (COOKIE_DAYS * 86_400) as i64).abs() < 3_600,
        "cookie_days = {COOKIE_DAYS}: expires in {lifetime} s: {cookie:?}"
    );

    w.open("/cookies/next");
    let rows = w.wait_rows("SELECT path, cookie_id FROM {audience} WHERE site = 'cookies' ORDER BY path", 2);
    assert_eq!(b.cookie("_wsid").map(|c| c.value().to_owned()), Some(value), "the cookie is kept");
    let ids: Vec<u64> = rows.iter().map(|r| u64_of(&r["cookie_id"])).collect();
    assert_ne!(ids[0], 0, "{rows:#?}");
    assert_eq!(ids[0], ids[1], "the same cookie id on both pages: {rows:#?}");
    assert_eq!(u64_of(&first[0]["cookie_id"]), ids[0]);
    let trouble = w.wait_rows("SELECT cookie_id FROM {trouble} WHERE site = 'cookies' AND type = 'pageview'", 2);
    assert!(trouble.iter().all(|r| u64_of(&r["cookie_id"]) == ids[0]), "{trouble:#?}");
    w.done();
}
