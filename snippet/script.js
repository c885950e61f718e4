/* webstats snippet (minimal): one pageview per page load, sent with sendBeacon.
   Embed: <script defer src="https://COLLECTOR/script.js" data-site="SITE_ID"></script> */
(function () {
  var script = document.currentScript;
  if (!script) return;
  var site = script.getAttribute("data-site");
  if (!site) return;
  var endpoint = script.getAttribute("data-api") || new URL("/api/event", script.src).href;
  try {
    var body = JSON.stringify({
      site: site,
      url: location.href,
      ref: document.referrer || undefined,
      sw: screen.width,
      lang: navigator.language
    });
    if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint, body))) {
      fetch(endpoint, { method: "POST", body: body, keepalive: true, headers: { "Content-Type": "text/plain" } })["catch"](function () {});
    }
  } catch (e) {
    /* never throw into the page */
  }
})();
