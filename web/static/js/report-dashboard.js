// A report dashboard: the range filter reloads table and chart over AJAX, no navigation.
// Data is written with textContent only, so nothing from the database is parsed as HTML.
(function () {
  "use strict";
  const root = document.getElementById("report-dashboard");
  if (!root) return;
  const range = document.getElementById("range");
  const loading = document.getElementById("loading");
  const exportLink = document.getElementById("export-csv");
  const table = document.getElementById("report-table");
  const caption = document.getElementById("table-caption");
  let chart = null;
  let pending = null;

  function query() {
    const params = new URLSearchParams({ days: range.value });
    if (root.dataset.company) params.set("company", root.dataset.company);
    return params.toString();
  }

  function format(value, kind) {
    if (value === null || value === undefined) return "";
    if (kind === "percent") return Number(value).toFixed(1) + " %";
    return String(value);
  }

  function renderTable(data) {
    const headRow = table.querySelector("thead tr");
    const body = table.querySelector("tbody");
    headRow.replaceChildren();
    body.replaceChildren();
    data.columns.forEach((col) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = col.label;
      if (col.kind !== "text") th.className = "num";
      headRow.appendChild(th);
    });
    data.rows.forEach((row) => {
      const tr = document.createElement("tr");
      data.columns.forEach((col) => {
        const td = document.createElement("td");
        td.textContent = format(row[col.key], col.kind);
        if (col.kind !== "text") td.className = "num";
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    caption.textContent = data.rows.length + " rows · last " + data.params.days + " days";
    table.dataset.days = String(data.params.days);
  }

  function renderChart(spec) {
    const canvas = document.getElementById("report-chart");
    const datasets = spec.series.map((s) => ({ label: s.label, data: s.data, cubicInterpolationMode: "monotone", fill: false }));
    if (chart) {
      chart.data.labels = spec.labels;
      chart.data.datasets = datasets;
      chart.update();
    } else if (window.Chart) {
      chart = new window.Chart(canvas, {
        type: spec.type || "line",
        data: { labels: spec.labels, datasets: datasets },
        options: { responsive: true, maintainAspectRatio: false, animation: false },
      });
    }
    canvas.dataset.points = String(spec.labels.length);
  }

  function load() {
    if (pending) pending.abort();
    pending = new AbortController();
    loading.setAttribute("aria-hidden", "false");
    const q = query();
    exportLink.href = root.dataset.exportUrl + "?" + q;
    fetch(root.dataset.dataUrl + "?" + q, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      signal: pending.signal,
    })
      .then((r) => {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then((data) => {
        renderTable(data);
        renderChart(data.chart);
      })
      .catch((err) => {
        if (err.name !== "AbortError") caption.textContent = "Could not load data (" + err.message + ").";
      })
      .finally(() => loading.setAttribute("aria-hidden", "true"));
  }

  range.addEventListener("change", load);
  load();
})();
