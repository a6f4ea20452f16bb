// The report page: KPI cards, the chart (a click drills down), the table with server-side
// sort and pagination, and export links for exactly the view on screen (filters and sort).
import { createView, drawChart, drillTarget, follow, hasChart, renderKpis, renderTable } from "./reportkit.js";

const root = document.getElementById("report-view");
if (root) {
  const kpis = document.getElementById("kpis");
  const chartCard = document.getElementById("chart-card");
  const chartTitle = document.getElementById("chart-title");
  const canvas = document.getElementById("report-chart");
  const table = document.getElementById("report-table");
  const empty = document.getElementById("empty");
  const pageSize = document.getElementById("page-size");
  const prev = document.getElementById("page-prev");
  const next = document.getElementById("page-next");
  const range = document.getElementById("page-range");
  const exports = Array.from(document.querySelectorAll("a[data-export]"));
  let shown = null; // the last data rendered, for sort and paging

  const render = (data, view) => {
    shown = data;
    renderKpis(kpis, data.kpis);
    chartCard.hidden = !hasChart(data.chart);
    if (hasChart(data.chart)) chartTitle.textContent = data.chart.series.map((s) => s.label).join(" · ");
    drawChart(canvas, data.chart, (drill, i) => follow(view, drillTarget(view, {
      report: drill.report || view.meta.report, param: drill.param, value: drill.values[i],
    })));
    renderTable(table, data, { view, report: view.meta.report, onSort: (key) => sortBy(view, key) });
    renderPager(data.pagination, data.rows.length);
    const query = new URLSearchParams(view.params());
    query.delete("page");
    query.delete("page_size");
    for (const link of exports) {
      const text = query.toString();
      link.href = link.dataset.base + (text ? "?" + text : "");
    }
  };

  function sortBy(view, key) {
    const current = shown && shown.sort ? shown.sort : {};
    const direction = current.key === key && current.direction === "asc" ? "desc" : "asc";
    view.set({ sort: key, dir: direction, page: null });
  }

  function renderPager(pagination, count) {
    const { page, page_size: size, total, pages } = pagination;
    const first = (page - 1) * size + 1;
    if (!total) range.textContent = "No rows";
    else if (!count) range.textContent = "Page " + page + " is past the last page (" + pages + ")";
    else range.textContent = "Rows " + first + "–" + (first + count - 1) + " of " + total;
    empty.hidden = total > 0;
    table.hidden = total === 0;
    prev.disabled = page <= 1;
    next.disabled = page >= pages;
    if (!Array.from(pageSize.options).some((o) => o.value === String(size))) {
      pageSize.appendChild(new Option(String(size), String(size)));
    }
    pageSize.value = String(size);
    prev.dataset.page = String(Math.min(page - 1, pages));
    next.dataset.page = String(page + 1);
  }

  const view = createView(root, render);
  pageSize.addEventListener("change", () => view.set({
    page_size: pageSize.value === pageSize.dataset.default ? null : pageSize.value, page: null,
  }));
  for (const button of [prev, next]) {
    button.addEventListener("click", () => {
      const page = Number(button.dataset.page);
      view.set({ page: page > 1 ? page : null });
    });
  }
}
