/* ManiReports time tracking for Moodle pages.
 *
 * Paste into Moodle's "Additional HTML" (before BODY is closed):
 *   <script src="https://moodle.example/manireports/static/js/heartbeat.js" defer></script>
 *
 * While the page is visible and the user is not idle, posts a heartbeat every 20-30 s to the
 * ManiReports that served this script (under whatever path it is served). The user is named
 * only by a signed token fetched from ManiReports: first with the learner's Moodle session
 * (the MoodleSession cookie arrives when ManiReports is served under Moodle's host), else with
 * a ManiReports sign-in. Stops for good when there is neither, or when ManiReports says time
 * tracking is disabled.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.fetch) { return; }
  // Where ManiReports is: the script's own URL without /static/js/heartbeat.js (a proxy
  // path such as https://moodle.example/manireports is kept).
  var base = script.src.replace(/\/static\/js\/heartbeat\.js(?:[?#].*)?$/, "");
  var IDLE_MS = 5 * 60 * 1000;
  var minMs = 20000, maxMs = 30000;
  var token = null, expiresMs = 0, timer = null, stopped = false, lastInput = Date.now();
  var pendingToken = null;

  function pageIds() {
    // Moodle marks every page's body with course-<id>, and module pages with cmid-<id>.
    var classes = document.body ? document.body.className : "";
    var course = /(?:^|\s)course-(\d+)(?:\s|$)/.exec(classes);
    var cm = /(?:^|\s)cmid-(\d+)(?:\s|$)/.exec(classes);
    return { course: course ? parseInt(course[1], 10) : 0, cm: cm ? parseInt(cm[1], 10) : 0 };
  }

  function beatId() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function stop() {
    stopped = true;
    clearTimeout(timer);
  }

  function idle() { return Date.now() - lastInput > IDLE_MS; }
  function active() { return !stopped && document.visibilityState === "visible" && !idle(); }

  function fetchToken() {
    if (token && expiresMs - Date.now() > 60000) { return Promise.resolve(token); }
    if (pendingToken) { return pendingToken; }
    var options = { credentials: "include", cache: "no-store" };
    // The Moodle session first (a learner who never signs in to ManiReports), then a
    // ManiReports sign-in; 401 from both: nobody to track on this page.
    pendingToken = fetch(base + "/tracking/moodle-token", { method: "POST", credentials: "include", cache: "no-store" })
      .then(function (response) {
        return response.status === 401 ? fetch(base + "/tracking/token", options) : response;
      }, function () { return fetch(base + "/tracking/token", options); })
      .then(function (response) {
        if (response.status === 403 || response.status === 401) { stop(); }
        if (!response.ok) { throw new Error("no heartbeat token (" + response.status + ")"); }
        return response.json();
      })
      .then(function (data) {
        if (!data.tracking) { stop(); throw new Error("time tracking is disabled"); }
        token = data.token;
        expiresMs = data.expires * 1000;
        if (data.interval) { minMs = data.interval.min_s * 1000; maxMs = data.interval.max_s * 1000; }
        return token;
      })
      .finally(function () { pendingToken = null; });
    return pendingToken;
  }

  function send() {
    if (!active()) { return; }
    var ids = pageIds();
    if (!ids.course) { return; }
    fetchToken().then(function (current) {
      return fetch(base + "/tracking/beat", {
        method: "POST",
        // text/plain keeps this a CORS "simple request": no preflight per beat.
        headers: { "Content-Type": "text/plain" },
        body: JSON.stringify({ token: current, course: ids.course, cm: ids.cm, id: beatId() }),
        keepalive: true
      });
    }).then(function (response) {
      if (response.status === 401) { token = null; }
      if (response.status === 403) { stop(); }
    }).catch(function () { /* the next beat tries again */ });
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (active()) { timer = setTimeout(send, minMs + Math.random() * (maxMs - minMs)); }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { lastInput = Date.now(); send(); }
    else { clearTimeout(timer); }
  });
  ["mousemove", "mousedown", "keydown", "scroll", "touchstart", "wheel"].forEach(function (name) {
    window.addEventListener(name, function () {
      var wasIdle = idle();
      lastInput = Date.now();
      if (wasIdle) { send(); }
    }, { passive: true });
  });
  send();
})();
