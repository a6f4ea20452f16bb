// Shared by the report page and the role dashboards: the filter bar, the URL that holds the
// view's state (pushState on every change, popstate re-renders), chips for the applied
// filters, loading and error states, KPI cards, charts that drill down, and tables.
// Everything from the server is written with textContent: nothing is parsed as HTML.

const NUMERIC = new Set(["int", "float", "percent", "duration"]);
const cellClass = (kind) => (NUMERIC.has(kind) ? "num" : kind === "date" || kind === "datetime" ? "when" : "");
const SEARCH_DELAY_MS = 350;

// ---- Formatting ---------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");
const DAY = new Intl.DateTimeFormat(undefined, { timeZone: "UTC", day: "numeric", month: "short", year: "numeric" });
const SHORT_DAY = new Intl.DateTimeFormat(undefined, { timeZone: "UTC", day: "numeric", month: "short" });
const MINUTE = new Intl.DateTimeFormat(undefined, {
  timeZone: "UTC", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
});
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?/;

// Times arrive in the viewer's Moodle timezone, offset included: show that wall clock as it
// is (formatting it as UTC), not converted to whatever zone the browser is in.
function wallClock(text, formatter) {
  const m = ISO.exec(String(text));
  if (!m) return String(text);
  const [, y, mo, d, h = "0", mi = "0"] = m;
  return formatter.format(new Date(Date.UTC(+y, +mo - 1, +d, +h, +mi)));
}

function duration(seconds) {
  const minutes = Math.round(Number(seconds) / 60);
  return Math.floor(minutes / 60) + ":" + pad(minutes % 60);
}

export function format(value, kind) {
  if (value === null || value === undefined || value === "") return "";
  switch (kind) {
    case "percent": return Number(value).toFixed(1) + " %";
    case "duration": return duration(value);
    case "datetime": return wallClock(value, MINUTE);
    case "date": return wallClock(value, DAY);
    default: return String(value);
  }
}

function formatKpi(value, kind) {
  if (kind === "int" || kind === "float") return Number(value).toLocaleString();
  return format(value, kind);
}

function chartLabel(label) {
  return /^\d{4}-\d{2}-\d{2}$/.test(String(label)) ? wallClock(label, SHORT_DAY) : String(label);
}

const LABEL_MAX = 22;
const shortLabel = (label) => (String(label).length > LABEL_MAX ? String(label).slice(0, LABEL_MAX - 1) + "…" : label);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- URL state ----------------------------------------------------------------------------

export function withChanges(params, changes) {
  const next = new URLSearchParams(params);
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === "") next.delete(key);
    else next.set(key, String(value));
  }
  return next;
}

export function urlOf(path, params) {
  const query = params.toString();
  return query ? path + "?" + query : path;
}

// The view: a root element holding a `.filter-bar` form, `#chips`, `#loading` and
// `#view-error`; `render(data, view)` draws what `data-data-url` answers for the URL's query.
export function createView(root, render) {
  const form = root.querySelector(".filter-bar");
  const controls = form ? Array.from(form.querySelectorAll("[data-filter]")) : [];
  const company = form ? form.querySelector("[data-company]") : null;
  const chips = root.querySelector("#chips");
  const loading = root.querySelector("#loading");
  const error = root.querySelector("#view-error");
  let pending = null;
  let typing = null;
  // Every report slot busy (429): the place in the queue is shown and kept (the ticket goes
  // back with the next try), and the view asks again by itself after Retry-After.
  let retry = null;
  let ticket = null;
  let waiting = false;
  const loadingText = loading ? loading.textContent : "";
  // The chart, KPIs and chips of the filters last loaded: paging and sorting the same filters
  // asks for the rows alone (`parts=rows`), which for a large report saves whole passes.
  let summary = null;

  const view = {
    meta: JSON.parse(root.dataset.meta || "{}"),
    params: () => new URLSearchParams(window.location.search),
    // A change of filters, sort or page: a new history entry, then the data for it.
    set(changes) {
      const next = withChanges(view.params(), changes);
      const moved = next.toString() !== view.params().toString();
      if (moved) window.history.pushState(null, "", urlOf(window.location.pathname, next));
      sync();
      if (moved) load();
    },
    // Another company is another scope (other course names): a page of its own.
    switchCompany(id) {
      const next = withChanges(view.params(), { company: id, course: null, cohort: null, page: null });
      window.location.assign(urlOf(window.location.pathname, next));
    },
    load: () => load(),
  };

  function defaultOf(control) {
    return control.dataset.default || "";
  }

  function sync() {
    const params = view.params();
    for (const control of controls) {
      const value = params.get(control.name) || defaultOf(control);
      if (control.tagName === "SELECT" && value && !Array.from(control.options).some((o) => o.value === value)) {
        control.appendChild(el("option", "", control.dataset.label + " #" + value)).value = value;
      }
      if (control !== document.activeElement || control.type !== "search") control.value = value;
    }
  }

  function changed(control) {
    const value = control.value.trim();
    view.set({ [control.name]: value === defaultOf(control) ? null : value, page: null });
  }

  for (const control of controls) {
    if (control.type === "search") {
      control.addEventListener("input", () => {
        window.clearTimeout(typing);
        typing = window.setTimeout(() => changed(control), SEARCH_DELAY_MS);
      });
    } else if (control.type !== "hidden") {
      control.addEventListener("change", () => changed(control));
    }
  }
  if (company) company.addEventListener("change", () => view.switchCompany(company.value));
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      window.clearTimeout(typing);
      controls.filter((c) => c.type === "search").forEach((c) => {
        if ((view.params().get(c.name) || "") !== c.value.trim()) changed(c);
      });
    });
  }
  window.addEventListener("popstate", () => {
    sync();
    load();
  });

  function renderChips(filters) {
    if (!chips) return;
    chips.replaceChildren();
    const params = view.params();
    for (const filter of filters || []) {
      const chip = el("li", "chip");
      const control = controls.find((c) => c.dataset.label === filter.label);
      chip.appendChild(el("span", "", filter.label + ": " + chipValue(filter, control)));
      if (control && params.get(control.name) && params.get(control.name) !== defaultOf(control)) {
        chip.appendChild(removeButton(filter.label, () => view.set({ [control.name]: null, page: null })));
      } else if (filter.label === "Company" && company && params.get("company")
                 && company.querySelector('option[value=""]')) {
        chip.appendChild(removeButton(filter.label, () => view.switchCompany(null)));
      }
      chips.appendChild(chip);
    }
    chips.hidden = chips.children.length === 0;
  }

  // The server names ids (courses, cohorts); a bare choice or date reads as the bar shows it.
  function chipValue(filter, control) {
    const value = String(filter.value);
    if (!control || control.value !== value) return value;
    if (control.tagName === "SELECT" && control.selectedIndex >= 0) return control.options[control.selectedIndex].text;
    if (control.type === "date") return format(value, "date");
    return value;
  }

  function removeButton(label, action) {
    const button = el("button", "chip-remove", "×");
    button.type = "button";
    button.setAttribute("aria-label", "Remove filter " + label);
    button.addEventListener("click", action);
    return button;
  }

  function load() {
    if (pending) pending.abort();
    window.clearTimeout(retry);
    waiting = false;
    const controller = new AbortController();
    pending = controller;
    const query = view.params().toString();
    const filters = filterKey(view.params());
    const reuse = root.dataset.pages === "rows" && summary && summary.key === filters;
    const asked = reuse ? withChanges(view.params(), { parts: "rows" }) : view.params();
    delete root.dataset.loaded;
    root.setAttribute("aria-busy", "true");
    if (loading) loading.setAttribute("aria-hidden", "false");
    const headers = { Accept: "application/json" };
    if (ticket) headers["X-Run-Ticket"] = ticket;
    fetch(urlOf(root.dataset.dataUrl, asked), {
      headers,
      credentials: "same-origin",
      signal: controller.signal,
    })
      .then((response) => response.json().catch(() => ({})).then((body) => {
        if (response.status === 429 && typeof body.position === "number") {
          const wait = Number(response.headers.get("Retry-After")) || body.retry_after || 1;
          throw Object.assign(new Error(body.error || "busy"), { busy: body, wait });
        }
        if (!response.ok) {
          const reason = body.error || "HTTP " + response.status;
          throw new Error(body.field ? body.field + ": " + reason : reason);
        }
        return body;
      }))
      .then((data) => {
        ticket = null;
        if (loading) loading.textContent = loadingText;
        if (reuse) Object.assign(data, { chart: summary.chart, kpis: summary.kpis, filters: summary.filters });
        else summary = { key: filters, chart: data.chart, kpis: data.kpis, filters: data.filters };
        if (error) error.hidden = true;
        render(data, view);
        renderChips(data.filters);
        root.dataset.loaded = query;
      })
      .catch((err) => {
        if (err.name === "AbortError") return;
        if (err.busy) {
          waiting = true;
          ticket = err.busy.ticket || ticket;
          if (loading) {
            const ahead = err.busy.position;
            loading.textContent = "Waiting for a free slot — " + (ahead === 0 ? "you are next"
              : ahead + " ahead of you") + "…";
          }
          if (error) error.hidden = true;
          retry = window.setTimeout(load, Math.min(Math.max(err.wait, 1), 10) * 1000);
          return;
        }
        if (loading) loading.textContent = loadingText;
        if (error) {
          error.textContent = "Could not load the figures: " + err.message;
          error.hidden = false;
        }
      })
      .finally(() => {
        if (pending !== controller) return;
        pending = null;
        if (waiting) return; // still in the queue: busy until the retry answers
        root.removeAttribute("aria-busy");
        if (loading) loading.setAttribute("aria-hidden", "true");
      });
  }

  sync();
  load();
  return view;
}

// The query without what only moves through the rows (page, page size, sort).
function filterKey(params) {
  const key = new URLSearchParams(params);
  for (const name of ["page", "page_size", "sort", "dir"]) key.delete(name);
  key.sort();
  return key.toString();
}

// ---- Drill-down ---------------------------------------------------------------------------

// Where a drill on `param` = `value` lands: `same` (this report page: filter and reload in
// place), a company (this page for that company), or another report's page carrying the
// filters it takes.
export function drillTarget(view, { report, param, value }) {
  const params = view.params();
  if (param === "company") {
    const next = withChanges(params, { company: value, course: null, cohort: null, page: null });
    return { href: urlOf(window.location.pathname, next) };
  }
  if (!report) return null;
  if (report === view.meta.report) {
    return { href: urlOf(window.location.pathname, withChanges(params, { [param]: value, page: null })),
             changes: { [param]: value, page: null } };
  }
  const target = (view.meta.reports || {})[report];
  if (!target) return null;
  const carried = new URLSearchParams();
  for (const name of [...target.params, "company"]) {
    if (name !== param && params.get(name)) carried.set(name, params.get(name));
  }
  carried.set(param, value);
  return { href: urlOf(target.url, carried) };
}

export function follow(view, target) {
  if (!target) return;
  if (target.changes) view.set(target.changes);
  else window.location.assign(target.href);
}

// A cell's drill link, for a column the page's metadata says drills (`drills[report][key]`).
function cellTarget(view, report, column, row) {
  const drill = ((view.meta.drills || {})[report] || {})[column.key];
  if (!drill) return null;
  const value = row[drill.param + "_id"];
  if (value === null || value === undefined) return null;
  return drillTarget(view, { report: drill.report, param: drill.param, value });
}

// A cell's link to the user or course page it names (`links[report][key]`), if any.
function pageTarget(view, report, column, row) {
  const kind = ((view.meta.links || {})[report] || {})[column.key];
  const id = kind ? row[kind + "_id"] : null;
  if (id === null || id === undefined) return null;
  return { href: view.meta.pages[kind] + encodeURIComponent(id) };
}

export function reportLink(view, report, extra) {
  const target = (view.meta.reports || {})[report];
  if (!target) return null;
  const params = view.params();
  const carried = new URLSearchParams();
  for (const name of [...target.params, "company"]) {
    if (params.get(name)) carried.set(name, params.get(name));
  }
  return urlOf(target.url, withChanges(carried, extra || {}));
}

// ---- KPI cards, charts, tables ------------------------------------------------------------

export function renderKpis(list, kpis) {
  list.replaceChildren();
  for (const kpi of kpis || []) {
    const card = el("li", "kpi");
    card.appendChild(el("span", "kpi-value", formatKpi(kpi.value, kpi.kind)));
    card.appendChild(el("span", "kpi-label", kpi.label));
    card.dataset.key = kpi.key;
    list.appendChild(card);
  }
  list.hidden = list.children.length === 0;
}

export function hasChart(spec) {
  return Boolean(spec && Array.isArray(spec.labels) && Array.isArray(spec.series) && spec.labels.length);
}

// Draws (or updates) the chart on `canvas`; a click on a bar, point or slice of a chart with
// `drill` calls onDrill(drill, index).
export function drawChart(canvas, spec, onDrill) {
  const Chart = window.Chart;
  const old = Chart ? Chart.getChart(canvas) : null;
  if (!Chart || !hasChart(spec)) {
    if (old) old.destroy();
    canvas.dataset.points = "0";
    return;
  }
  const type = spec.type || "bar";
  const round = type === "pie" || type === "doughnut";
  const labels = spec.labels.map(chartLabel);
  const datasets = spec.series.map((s) => {
    const set = { label: s.label, data: s.data, maxBarThickness: 72 };
    if (type === "line") Object.assign(set, { cubicInterpolationMode: "monotone", fill: false, pointRadius: labels.length > 40 ? 0 : 3 });
    return set;
  });
  const drill = spec.drill && Array.isArray(spec.drill.values) ? spec.drill : null;
  canvas.dataset.drill = drill ? drill.param : "";
  // One series: its name on the value axis (a legend for one entry says less).
  const axisTitle = { display: !round && datasets.length === 1, text: datasets.length ? datasets[0].label : "" };
  if (old && old.config.type === type) {
    old.data.labels = labels;
    old.data.datasets = datasets;
    old.$drill = drill;
    if (!round) old.options.scales.y.title = axisTitle;
    old.update();
  } else {
    if (old) old.destroy();
    const chart = new Chart(canvas, {
      type,
      data: { labels, datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: round ? { mode: "nearest", intersect: true } : { mode: "index", intersect: false },
        plugins: { legend: { display: round || datasets.length > 1 } },
        scales: round ? {} : {
          // Long names are cut on the axis (the tooltip has them whole).
          x: { ticks: { callback(value) { return shortLabel(this.getLabelForValue(value)); } } },
          y: { beginAtZero: true, title: axisTitle },
        },
        onClick: (event, elements, c) => {
          if (c.$drill && elements.length) onDrill(c.$drill, elements[0].index);
        },
        onHover: (event, elements, c) => {
          c.canvas.style.cursor = c.$drill && elements.length ? "pointer" : "default";
        },
      },
    });
    chart.$drill = drill;
  }
  canvas.dataset.points = String(labels.length);
  canvas.setAttribute("aria-label", spec.series.map((s) => s.label).join(", ") + " by " + labels.length + " labels"
    + (drill ? "; click one to see its rows" : ""));
}

// The table for `data.columns` and `data.rows`; `report` names the rows' report (for drill
// links); `onSort(key)` makes sortable headers buttons and marks the sorted one (aria-sort).
export function renderTable(table, data, { view, report, onSort }) {
  const headRow = table.querySelector("thead tr");
  const body = table.querySelector("tbody");
  headRow.replaceChildren();
  body.replaceChildren();
  const sort = data.sort || {};
  for (const column of data.columns) {
    const th = el("th", cellClass(column.kind));
    th.scope = "col";
    if (onSort && column.sortable) {
      const button = el("button", "sort", column.label);
      button.type = "button";
      button.addEventListener("click", () => onSort(column.key));
      th.appendChild(button);
    } else {
      th.textContent = column.label;
    }
    if (sort.key === column.key) th.setAttribute("aria-sort", sort.direction === "desc" ? "descending" : "ascending");
    headRow.appendChild(th);
  }
  for (const row of data.rows) {
    const tr = document.createElement("tr");
    for (const column of data.columns) {
      const td = el("td", cellClass(column.kind));
      const text = format(row[column.key], column.kind);
      const target = view ? cellTarget(view, report, column, row)
        || pageTarget(view, report, column, row) : null;
      if (target && text) {
        const link = el("a", "", text);
        link.href = target.href;
        if (target.changes) {
          link.addEventListener("click", (event) => {
            if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
            event.preventDefault();
            follow(view, target);
          });
        }
        td.appendChild(link);
      } else {
        td.textContent = text;
      }
      if (column.kind === "datetime" && row[column.key]) td.title = row[column.key];
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}
