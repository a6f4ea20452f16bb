// The "New email job" page: shows the chosen recipient source only, counts its recipients as
// it changes (debounced, through the server's own parser) and sends the test message without
// leaving the page. Without this script every source is shown and both buttons post the form.
(function () {
  "use strict";
  var form = document.getElementById("compose");
  if (!form) return;
  var countOut = document.getElementById("recipient-count");
  var testOut = document.getElementById("test-result");
  var panels = form.querySelectorAll(".source-panel");
  var timer = null;
  var seq = 0;

  function chosen() {
    var checked = form.querySelector("input[name=source]:checked");
    return checked ? checked.value : "paste";
  }

  function showPanels() {
    var source = chosen();
    panels.forEach(function (panel) {
      panel.hidden = panel.getAttribute("data-source") !== source;
    });
  }

  function listErrors(out, body) {
    var errors = body.errors || (body.error ? [{ field: body.field, error: body.error }] : []);
    out.textContent = "";
    out.classList.add("bad");
    var list = document.createElement("ul");
    errors.slice(0, 20).forEach(function (e) {
      var item = document.createElement("li");
      item.textContent = (e.field ? e.field + ": " : "") + e.error;
      list.appendChild(item);
    });
    if (errors.length > 20) {
      var more = document.createElement("li");
      more.textContent = "… and " + (errors.length - 20) + " more";
      list.appendChild(more);
    }
    out.appendChild(list);
  }

  function post(url) {
    return fetch(url, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    }).then(function (response) {
      return response.json().then(
        function (body) { return { ok: response.ok, body: body }; },
        function () { return { ok: false, body: { error: "the server answered " + response.status } }; }
      );
    });
  }

  function count() {
    var mine = ++seq;
    countOut.classList.remove("bad");
    countOut.textContent = "Counting…";
    post(form.getAttribute("data-count-url")).then(function (result) {
      if (mine !== seq) return; // a later count is on its way
      if (!result.ok) return listErrors(countOut, result.body);
      var b = result.body;
      var said = b.count.toLocaleString() + (b.count === 1 ? " recipient" : " recipients");
      var notes = [];
      if (b.duplicates) notes.push(b.duplicates + " repeated address" + (b.duplicates === 1 ? "" : "es") + " sent to once");
      if (b.skipped) notes.push(b.skipped + " without a usable address left out");
      countOut.textContent = said + (notes.length ? " (" + notes.join("; ") + ")" : "");
    }, function () {
      if (mine === seq) countOut.textContent = "Could not count now; the count is checked again on sending.";
    });
  }

  function countSoon() {
    clearTimeout(timer);
    timer = setTimeout(count, 600);
  }

  form.addEventListener("change", function (event) {
    var name = event.target.name;
    if (name === "source") showPanels();
    if (name === "csv") {
      // A new file replaces the one carried over from a refused submit.
      form.querySelector("textarea[name=csv_text]").value = "";
      var kept = document.getElementById("csv-kept");
      if (kept) kept.hidden = true;
    }
    if (["source", "csv", "course", "cohort", "department"].indexOf(name) >= 0) countSoon();
  });
  document.getElementById("recipients").addEventListener("input", countSoon);
  // A field's error from the last submit goes once the field is changed.
  form.addEventListener("input", function (event) {
    var field = event.target;
    if (field.getAttribute("aria-invalid") !== "true") return;
    (field.getAttribute("aria-describedby") || "").split(/\s+/).forEach(function (id) {
      var said = id && document.getElementById(id);
      if (said) said.hidden = true;
    });
    field.removeAttribute("aria-invalid");
  });
  document.getElementById("count-button").addEventListener("click", count);

  document.getElementById("test-button").addEventListener("click", function (event) {
    event.preventDefault();
    testOut.classList.remove("bad");
    testOut.textContent = "Sending…";
    post(form.getAttribute("data-test-url")).then(function (result) {
      if (!result.ok) return listErrors(testOut, result.body);
      testOut.textContent = result.body.message + " ";
      var link = document.createElement("a");
      link.href = result.body.url;
      link.textContent = "Follow it";
      testOut.appendChild(link);
    }, function () {
      testOut.classList.add("bad");
      testOut.textContent = "Could not reach the server; nothing was sent.";
    });
  });

  document.documentElement.classList.add("js-ready");
  showPanels();
  // Count what is there on load, unless the page came back with the recipients refused: their
  // error is already beside the field, and counting would only say it a second time.
  var refused = form.querySelector("[data-source='" + chosen() + "'] [aria-invalid=true]");
  if (!refused && (chosen() !== "paste" || document.getElementById("recipients").value.trim())) {
    count();
  }
})();
