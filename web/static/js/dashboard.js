// A role dashboard: every widget (KPI cards, a chart, a short table) redrawn from
// /dashboards/<role>/data whenever a filter changes, without a reload. Charts and table cells
// drill into the report behind them; each widget links to its full report, same filters.
import { createView, drawChart, drillTarget, el, follow, renderKpis, renderTable, reportLink } from "./reportkit.js";

const root = document.getElementById("dashboard-view");
const RANK = { kpis: 0, chart: 1, table: 2 };

if (root) {
  const widgets = document.getElementById("widgets");
  const empty = document.getElementById("empty");

  const render = (data, view) => {
    for (const canvas of widgets.querySelectorAll("canvas")) {
      const chart = window.Chart && window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    }
    widgets.replaceChildren();
    // Headline figures first, then charts (two a row on wide screens), then tables.
    const ordered = data.widgets.map((w, i) => [RANK[w.show] ?? 3, i, w]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((e) => e[2]);
    const sections = ordered.map((widget) => widgets.appendChild(renderWidget(widget, view)));
    const charts = sections.filter((s) => s.classList.contains("widget-chart"));
    if (charts.length % 2 === 1) charts[charts.length - 1].classList.add("wide");
    empty.hidden = data.widgets.length > 0;
  };

  function renderWidget(widget, view) {
    const section = el("section", "card widget widget-" + widget.show);
    section.dataset.widget = widget.key;
    const head = el("div", "card-head");
    const title = el("h2", "", widget.title);
    title.id = "widget-" + widget.key;
    section.setAttribute("aria-labelledby", title.id);
    head.appendChild(title);
    section.appendChild(head);
    const extra = widget.show === "table" && widget.sort ? { sort: widget.sort.key, dir: widget.sort.direction } : {};
    const href = reportLink(view, widget.report, extra);
    if (href) {
      const link = el("a", "more", "Full report");
      link.href = href;
      link.setAttribute("aria-label", "Full report: " + widget.title);
      head.appendChild(link);
    }
    if (widget.show === "kpis") {
      const list = el("ul", "kpis");
      renderKpis(list, widget.kpis);
      section.appendChild(list);
      if (!widget.kpis.length) section.appendChild(el("p", "empty", "No figures for these filters."));
    } else if (widget.show === "chart") {
      const box = el("div", "chart-box");
      const canvas = el("canvas");
      canvas.id = "chart-" + widget.key;
      canvas.setAttribute("role", "img");
      box.appendChild(canvas);
      section.appendChild(box);
      // Drawn once the section is in the page, so the chart knows its size.
      window.requestAnimationFrame(() => canvas.isConnected && drawChart(canvas, widget.chart, (drill, i) => follow(view, drillTarget(view, {
        report: drill.report || widget.report, param: drill.param, value: drill.values[i],
      }))));
      if (!widget.chart || !widget.chart.labels || !widget.chart.labels.length) {
        box.hidden = true;
        section.appendChild(el("p", "empty", "Nothing to chart for these filters."));
      }
    } else {
      const wrap = el("div", "table-wrap");
      const table = el("table");
      table.appendChild(el("caption", "visually-hidden", widget.title));
      table.appendChild(el("thead")).appendChild(el("tr"));
      table.appendChild(el("tbody"));
      renderTable(table, widget, { view, report: widget.report });
      wrap.appendChild(table);
      section.appendChild(wrap);
      const shown = widget.rows.length;
      section.appendChild(el("p", shown ? "muted small" : "empty",
        shown ? "Showing " + shown + " of " + widget.total : "No rows match these filters."));
      if (!shown) wrap.hidden = true;
    }
    return section;
  }

  createView(root, render);
}
