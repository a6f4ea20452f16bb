// The email job monitor: the job page and the job list poll /jobs/progress until every job
// they show is final, then stop. The server answers from a snapshot at most a second old.
(function () {
  "use strict";

  function number(n) { return n === null || n === undefined ? "" : Number(n).toLocaleString(); }

  function fetchJobs(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      });
  }

  function setText(root, field, text) {
    root.querySelectorAll('[data-field="' + field + '"]').forEach(function (el) { el.textContent = text; });
  }

  function showPart(root, part, shown) {
    root.querySelectorAll('[data-part="' + part + '"]').forEach(function (el) { el.hidden = !shown; });
  }

  function rateText(job) {
    return job.rate_per_s === null ? "—" : job.rate_per_s.toFixed(1) + " msg/s";
  }

  function updateJobPage(root, job) {
    setText(root, "label", job.label);
    setText(root, "summary", job.summary);
    ["sent", "failed", "skipped", "cancelled", "open", "total"].forEach(function (f) { setText(root, f, number(job[f])); });
    var bar = root.querySelector('[data-field="bar"]');
    showPart(root, "bar", job.progress_pct !== null);
    if (bar && job.progress_pct !== null) { bar.value = job.progress_pct; bar.textContent = job.progress_pct + "%"; }
    setText(root, "pct", job.progress_pct === null ? "" : job.progress_pct + "%");
    setText(root, "rate", rateText(job));
    setText(root, "rate-label", job.final ? "Average rate" : "Rate (last " + job.rate_window_s + " s)");
    setText(root, "limit", job.limit_per_s ? "(limit " + job.limit_per_s + "/s)" : "(no limit)");
    showPart(root, "eta", job.eta_s !== null);
    if (job.eta_s !== null) { setText(root, "eta", Math.ceil(job.eta_s) + " s"); }
    showPart(root, "dead", job.dead_open > 0);
    setText(root, "dead", job.dead_open);
    Object.keys(job.actions).forEach(function (action) {
      var form = root.querySelector('[data-action="' + action + '"]');
      if (form) { form.hidden = !job.actions[action]; }
    });
    showPart(root, "live", !job.final);
    if (job.final) { showPart(root, "reload", true); root.dataset.final = "true"; }
  }

  function pollJobPage(root) {
    var delay = Number(root.dataset.pollMs) || 1000;
    function tick() {
      fetchJobs(root.dataset.jobMonitor).then(function (body) {
        var job = body.jobs[0];
        updateJobPage(root, job);
        if (!job.final) { window.setTimeout(tick, delay); }
      }).catch(function () { window.setTimeout(tick, delay * 5); });  // back off, keep trying
    }
    if (root.dataset.final !== "true") { window.setTimeout(tick, delay); }
  }

  function pollJobList(table) {
    var delay = Number(table.dataset.pollMs) || 1000;
    function rows() { return Array.prototype.slice.call(table.querySelectorAll("tr[data-job-id]")); }
    function tick() {
      var open = rows();
      if (!open.length) { return; }
      var query = open.map(function (row) { return "job=" + encodeURIComponent(row.dataset.jobId); }).join("&");
      fetchJobs(table.dataset.jobList + "?" + query).then(function (body) {
        body.jobs.forEach(function (job) {
          var row = table.querySelector('tr[data-job-id="' + job.job + '"]');
          if (!row) { return; }
          setText(row, "label", job.label);
          setText(row, "pct", job.progress_pct === null ? "—" : job.progress_pct + "%");
          setText(row, "sent", number(job.sent));
          setText(row, "failed", number(job.failed));
          setText(row, "rate", job.rate_per_s === null ? "" : job.rate_per_s.toFixed(1));
          if (job.final) { row.removeAttribute("data-job-id"); }
        });
        window.setTimeout(tick, delay);
      }).catch(function () { window.setTimeout(tick, delay * 5); });
    }
    window.setTimeout(tick, delay);
  }

  document.querySelectorAll("[data-job-monitor]").forEach(pollJobPage);
  document.querySelectorAll("[data-job-list]").forEach(pollJobList);
})();

// The dead-letter view: a header checkbox chooses every recipient on the page.
document.querySelectorAll("[data-select-all]").forEach(function (box) {
  box.addEventListener("change", function () {
    document.querySelectorAll('input[name="' + box.dataset.selectAll + '"]:not(:disabled)')
      .forEach(function (el) { el.checked = box.checked; });
  });
});
