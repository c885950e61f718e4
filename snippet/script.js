/* webstats snippet: pageviews, custom events, page timing and script errors of one site, sent
   to the webstats collector as docs/http-api.md describes. This is the readable source;
   scripts/snippet.sh minifies it into snippet/script.min.js, which the collector serves at
   /script.js with its per-site table in place of the placeholder below.

   Embed:
     <script defer src="https://COLLECTOR/script.js" data-site="SITE_ID"></script>
   Optional attributes of that tag:
     data-api="https://COLLECTOR"  where beacons go (default: the origin the script came from)
     data-hash       a change of the URL's #fragment is a navigation (hash-routed apps)
     data-outbound   a click on a link to another host sends event "outbound", prop url
     data-downloads  a click on a link to a file (.pdf, .zip, ...) sends event "download", prop file
     data-local      also run on localhost, 127.0.0.1, [::1] and *.localhost
     data-webdriver  count automated browsers as visitors: send no automation hints

   API. Calls made before the script has loaded are queued by this stub and replayed:
     <script>window.webstats=window.webstats||function(){(webstats.q=webstats.q||[]).push(arguments)}</script>
     webstats('event', 'signup', {plan: 'pro'})  props: string, number or boolean, at most 30
     webstats('optout') / webstats('optin')        this browser stops / resumes sending (localStorage)
   Declarative: a click on an element with data-webstats-event="signup" (or inside one) sends
   that event with props from its data-webstats-prop-<key>="value" attributes.

   Rules this file keeps: syntax no newer than ES2017; no eval and no inline code, so a CSP that
   allows the collector's origin in script-src, connect-src and img-src is enough; the only
   global is window.webstats; every entry point (the start, listeners, the API, observers) runs
   inside guard(), so nothing is ever thrown into the page; nothing blocks the page. */
(function (w, d, nav, loc) {
  var OPTOUT_KEY = "webstats_optout";
  var DOWNLOAD = /\.(pdf|zip|rar|7z|docx?|xlsx?|pptx?|csv|txt|exe|msi|dmg|mp[34])$/i;

  // Wraps an entry point so that whatever it throws stays in here.
  var guard = (f) => (...args) => {
    try {
      return f(...args);
    } catch (e) {}
  };
  var on = (target, type, f, capture) => target.addEventListener(type, guard(f), capture);

  guard(() => {
    // Read first: currentScript is set only while the script's own code first runs.
    var script = d.currentScript || d.querySelector("script[data-site]");
    var data = script.dataset;
    var has = (name) => name in data;
    var stub = w.webstats;
    // On the page twice: the first copy does the work.
    if (stub && stub.webstats) return;
    var site = data.site;
    var endpoint = (data.api || new URL(script.src).origin).replace(/\/+$/, "") + "/api/event";

    // The collector replaces the identifier below at start-up with its per-site table:
    // {"<site id>": ["<cookie name, or empty when cookie mode is off>", <cookie lifetime in days>,
    // <1 when DNT/GPC beacons are dropped, 0 when they are counted anonymously>], ...}.
    // A site missing from it runs without cookie and with DNT anonymous.
    var conf = __WEBSTATS_SITES__[site] || [];
    // window.doNotTrack: older Safari and Edge.
    var dnt = (nav.doNotTrack || w.doNotTrack) == "1" || nav.globalPrivacyControl;
    // Under DNT/GPC no cookie is read, set or sent.
    var cookieName = !dnt && conf[0];
    var cookie = () => (d.cookie.match("(^|; )" + cookieName + "=([^;]+)") || [])[2];
    // Off: nothing is sent and nothing on the page is hooked; the API still answers. Pages
    // without a host (file:, about:) have no URL the collector would take.
    var off =
      !site ||
      (dnt && conf[2]) ||
      !loc.host ||
      (/^(127\.|\[::1])|(^|\.)localhost$/.test(loc.hostname) && !has("local"));

    // Automation seen in this browser (docs/http-api.md, auto): the collector keeps such
    // beacons out of the audience and records why. Only marks the drivers leave themselves (a
    // headless browser's User-Agent already tells the collector), never guesses from plugins
    // or window sizes, which real browsers share.
    var auto = has("webdriver")
      ? ""
      : [
          nav.webdriver && "webdriver",
          Object.keys(w).some((k) => /^\$?cdc_/.test(k)) && "selenium",
          w.callPhantom && "phantom",
        ].filter(Boolean).join();

    // Whether nothing may be sent now: off, or opted out in this browser.
    var skip = () => {
      try {
        return off || localStorage.getItem(OPTOUT_KEY) == "1";
      } catch (e) {
        // Storage is blocked (privacy settings, sandboxed frame): no opt-out can have been stored.
      }
    };

    // One beacon; `fields` may override url (the timing beacon names the page it measured).
    var send = (type, fields) => {
      if (skip()) return;
      var b = Object.assign({ site, type, url: loc.href, sw: screen.width, lang: nav.language }, fields);
      if (auto) b.auto = auto;
      if (dnt) b.dnt = 1;
      else if (cookieName) {
        // The first-party id, created by the first beacon that needs it: 16 random bytes in hex.
        if (!cookie())
          d.cookie =
            cookieName + "=" +
            [].map.call(crypto.getRandomValues(new Uint8Array(16)), (x) => (x + 256).toString(16).slice(1)).join("") +
            "; path=/; max-age=" + conf[1] * 86400 + "; SameSite=Lax" + (loc.protocol == "https:" ? "; Secure" : "");
        // Read back: a browser that refuses cookies sends no id rather than a new one each time.
        b.sid = cookie();
      }
      var body = JSON.stringify(b);
      if (nav.sendBeacon && nav.sendBeacon(endpoint, body)) return;
      if (w.fetch) {
        // A string body goes as text/plain;charset=UTF-8, as with sendBeacon: no preflight.
        fetch(endpoint, { method: "POST", body, keepalive: true, credentials: "omit" }).catch(() => {});
      } else {
        // The GIF takes the same fields as query parameters, with props, t and err as JSON
        // (beacon.rs from_query). Parsing the body back drops the undefined fields, and the
        // reviver turns each nested object (key not "") into its JSON text.
        new Image().src =
          endpoint + ".gif?" + new URLSearchParams(JSON.parse(body, (k, v) => (k && typeof v == "object" ? JSON.stringify(v) : v)));
      }
    };

    // An event, with the props the contract accepts: string, finite number or boolean values,
    // at most 30.
    var event = (name, props) => {
      var clean = {};
      var n = 0;
      for (var k in props) {
        var v = props[k];
        var t = typeof v;
        if (n < 30 && (t == "string" || t == "boolean" || (t == "number" && isFinite(v)))) clean[k] = v, n++;
      }
      if (name) send("event", { name: "" + name, props: clean });
    };

    // The API, then the calls the stub queued before the script loaded.
    var api = (w.webstats = guard((command, name, props) => {
      if (command == "event") event(name, props);
      if (command == "optout") localStorage.setItem(OPTOUT_KEY, "1");
      if (command == "optin") localStorage.removeItem(OPTOUT_KEY);
    }));
    api.webstats = 1;
    ((stub && stub.q) || []).forEach((args) => api.apply(0, args));
    if (off) return;

    // Pageviews: on load, and whenever the URL (without the hash, unless data-hash) changes.
    var hashRouting = has("hash");
    var firstUrl = loc.href;
    var lastKey;
    var pageview = guard(() => {
      var key = hashRouting ? loc.href : loc.href.split("#")[0];
      if (key != lastKey) {
        send(undefined, { ref: lastKey || d.referrer || undefined });
        // A page seen while opted out is forgotten: it must not become the next one's referrer.
        lastKey = !skip() && key;
      }
    });
    pageview();
    ["pushState", "replaceState"].forEach((method) => {
      var original = history[method];
      history[method] = function () {
        // The page's own call, and whatever it throws, stay as they were.
        var result = original.apply(this, arguments);
        pageview();
        return result;
      };
    });
    on(w, "popstate", pageview);
    if (hashRouting) on(w, "hashchange", pageview);

    // Clicks: declarative events, downloads, outbound links (mailto:, tel: and javascript:
    // have no host). Capture phase, so that a page which stops propagation still counts.
    on(
      d,
      "click",
      (e) => {
        var el = e.target;
        var tagged = el.closest("[data-webstats-event]");
        var link = el.closest("a[href]");
        if (tagged) {
          var props = {};
          for (var a of tagged.attributes)
            if (!a.name.indexOf("data-webstats-prop-")) props[a.name.slice(19)] = a.value;
          event(tagged.dataset.webstatsEvent, props);
        }
        // A link element parses its own href: host, pathname.
        if (link) {
          if (has("downloads") && DOWNLOAD.test(link.pathname)) event("download", { file: link.pathname });
          else if (has("outbound") && link.host && link.host != loc.host)
            event("outbound", { url: link.host + link.pathname });
        }
      },
      true
    );

    // Timing, once per document load. Navigation and paint entries are read when the beacon
    // goes; the rest need observers (buffered: entries from before the script ran count).
    // Approximations: cls is the plain sum of layout shifts without recent input (no session
    // windows); inp is the longest interaction (event entries with an interactionId, 40 ms
    // threshold, so none when every interaction was faster) rather than the 98th percentile.
    var lcp;
    var inp;
    var cls;
    var timingSent;
    var observe = guard((type, f) => {
      var P = PerformanceObserver;
      if (P.supportedEntryTypes.includes(type)) {
        new P(guard((list) => list.getEntries().forEach(f))).observe({ type, buffered: true, durationThreshold: 40 });
        return true;
      }
    });
    observe("largest-contentful-paint", (e) => (lcp = e.startTime));
    // Supported and no shift yet is a measured 0.
    if (observe("layout-shift", (e) => e.hadRecentInput || (cls += e.value))) cls = 0;
    observe("event", (e) => {
      if (e.interactionId) inp = Math.max(inp || 0, e.duration);
    });
    var sendTiming = () => {
      if (timingSent) return;
      timingSent = 1;
      var n = performance.getEntriesByType("navigation")[0] || {};
      var fcp = performance.getEntriesByName("first-contentful-paint")[0] || {};
      var t = {
        ttfb: n.responseStart,
        fcp: fcp.startTime,
        dcl: n.domContentLoadedEventEnd,
        load: n.loadEventEnd,
        lcp,
        inp
      };
      // Only what was measured: 0 means "did not happen" for every one of these.
      for (var k in t) t[k] > 0 ? (t[k] = Math.round(t[k])) : delete t[k];
      // Undefined where layout shifts are not observed, and then left out of the JSON.
      t.cls = cls;
      // Browsers that run this script all have a navigation entry, so t is never empty.
      send("timing", { url: firstUrl, t });
    };
    on(d, "visibilitychange", () => d.hidden && sendTiming());
    on(w, "pagehide", sendTiming);

    // Script errors of the page (not of this script), deduplicated, at most 5 per page load.
    var seen = new Set();
    var error = (msg, thrown, src, line, col) => {
      var key = msg + src + line;
      var stack = thrown && thrown.stack;
      // "Script error." from a foreign script comes without source or error: nothing to fix.
      if (msg && (src || thrown) && src != script.src && !seen.has(key) && seen.size < 5) {
        seen.add(key);
        send("error", { err: { msg, src, line, col, stack: stack && ("" + stack).slice(0, 1000) } });
      }
    };
    on(w, "error", (e) => error(e.message, e.error, e.filename, e.lineno, e.colno));
    on(w, "unhandledrejection", ({ reason }) => error((reason && reason.message) || "" + reason, reason));
  })();
})(window, document, navigator, location);
