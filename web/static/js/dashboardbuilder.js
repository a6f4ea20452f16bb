// Built dashboards: the view (widgets placed on a static grid) and the builder (gridstack:
// add from the palette, drag to move and resize; a settings panel per widget; saved as JSON through
// the form's POST, CSRF token included). Every widget reads its report's data endpoint, so the
// report's own capability and tenant scope decide what it shows. Text from the server is
// written with textContent only.
import { drawChart, el, hasChart, renderKpis, renderTable } from "./reportkit.js";

const GS = window.GridStack && (window.GridStack.GridStack || window.GridStack);
const COLUMNS = 12;
const CELL_HEIGHT = 80;
// Below this window width the widgets stack in one column (a phone): positions are kept for
// wider screens, and the builder does not move or resize there.
const ONE_COLUMN_BELOW = 700;
const GRID_OPTIONS = { column: COLUMNS, cellHeight: CELL_HEIGHT, margin: 6 };
const RESPONSIVE = { columnOpts: { breakpointForWindow: true, breakpoints: [{ w: ONE_COLUMN_BELOW, c: 1 }] } };
const SIZES = { kpi: [3, 2], line: [6, 4], bar: [6, 4], pie: [4, 4], table: [6, 4] };
const MIN = { kpi: [2, 2], line: [3, 3], bar: [3, 3], pie: [3, 3], table: [3, 3] };
const UNAVAILABLE = "This widget's report is not available to you.";

// ---- Widgets: one report each, drawn from its data endpoint -------------------------------

function dataUrl(reportsUrl, widget, company, defaultRows) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(widget.filters || {})) {
    if (value !== "" && value !== null && value !== undefined) query.set(name, value);
  }
  if (company) query.set("company", String(company));
  const options = widget.options || {};
  if (widget.type === "table") {
    query.set("parts", "rows");
    query.set("page_size", String(options.rows || defaultRows || 10));
    if (options.sort) {
      query.set("sort", options.sort);
      query.set("dir", options.dir || "asc");
    }
  } else {
    query.set("page_size", "1");
  }
  return reportsUrl + encodeURIComponent(widget.report) + "/data?" + query.toString();
}

function destroyCharts(node) {
  for (const canvas of node.querySelectorAll("canvas")) {
    const chart = window.Chart && window.Chart.getChart(canvas);
    if (chart) chart.destroy();
  }
}

function widgetTitle(widget, reportTitle) {
  return (widget.options && widget.options.title) || reportTitle || widget.report || "Widget";
}

// The card inside a grid item: a head (title, and in the builder its buttons) and a body.
function widgetCard(content, widget, title) {
  content.replaceChildren();
  content.classList.add("widget-card");
  const head = el("div", "widget-head");
  const heading = el("h2", "widget-title", title);
  heading.id = "widget-title-" + widget.id;
  head.appendChild(heading);
  const body = el("div", "widget-body");
  content.setAttribute("role", "region");
  content.setAttribute("aria-labelledby", heading.id);
  content.append(head, body);
  return { head, body, heading };
}

// Fetches and draws one widget; answers the data (the builder offers its KPIs as choices).
async function fillWidget(body, widget, { reportsUrl, company, available, defaultRows }) {
  destroyCharts(body);
  body.dataset.state = "loading";
  if (!available) {
    body.replaceChildren(el("p", "unavailable", UNAVAILABLE));
    body.dataset.state = "unavailable";
    return null;
  }
  body.replaceChildren(el("p", "muted small", "Loading…"));
  let response;
  let data = {};
  try {
    response = await fetch(dataUrl(reportsUrl, widget, company, defaultRows), {
      headers: { Accept: "application/json" }, credentials: "same-origin",
    });
    data = await response.json().catch(() => ({}));
  } catch (err) {
    body.replaceChildren(el("p", "error", "Could not load the figures: " + err.message));
    body.dataset.state = "error";
    return null;
  }
  if (response.status === 403 || response.status === 404) {
    body.replaceChildren(el("p", "unavailable", UNAVAILABLE));
    body.dataset.state = "unavailable";
    return null;
  }
  if (!response.ok) {
    const reason = data.error || "HTTP " + response.status;
    body.replaceChildren(el("p", "error", "Could not load the figures: " + reason));
    body.dataset.state = "error";
    return null;
  }
  drawWidget(body, widget, data);
  body.dataset.state = "loaded";
  return data;
}

function drawWidget(body, widget, data) {
  const options = widget.options || {};
  body.replaceChildren();
  if (widget.type === "kpi") {
    const kpis = data.kpis || [];
    const chosen = options.kpi ? kpis.filter((k) => k.key === options.kpi) : kpis.slice(0, 1);
    if (!chosen.length) {
      body.appendChild(el("p", "empty", options.kpi ? "The report has no figure “" + options.kpi + "” for these filters." : "No figures for these filters."));
      return;
    }
    const list = el("ul", "kpis");
    renderKpis(list, chosen);
    body.appendChild(list);
  } else if (widget.type === "table") {
    const keys = options.columns && options.columns.length ? new Set(options.columns) : null;
    const columns = (data.columns || []).filter((c) => !keys || keys.has(c.key));
    const wrap = el("div", "table-wrap");
    const table = el("table");
    table.appendChild(el("thead")).appendChild(el("tr"));
    table.appendChild(el("tbody"));
    renderTable(table, { ...data, columns }, { view: null, report: widget.report });
    wrap.appendChild(table);
    body.appendChild(wrap);
    const total = data.pagination ? data.pagination.total : data.rows.length;
    body.appendChild(el("p", "muted small", data.rows.length ? "Showing " + data.rows.length + " of " + total : "No rows match these filters."));
  } else {
    if (!hasChart(data.chart)) {
      body.appendChild(el("p", "empty", "Nothing to chart for these filters."));
      return;
    }
    const box = el("div", "chart-box");
    const canvas = el("canvas");
    canvas.setAttribute("role", "img");
    box.appendChild(canvas);
    body.appendChild(box);
    const spec = { ...data.chart, type: widget.type, drill: null };
    window.requestAnimationFrame(() => canvas.isConnected && drawChart(canvas, spec, () => {}));
  }
}

// The grid starts in 12 columns and turns responsive once the widgets are placed, so a
// narrow screen stacks them in reading order and gridstack keeps their 12-column places.
function makeGrid(element, extra) {
  GS.renderCB = () => {}; // the content is built here, never from a string
  return GS.init({ ...GRID_OPTIONS, ...extra }, element);
}

function contentOf(item) {
  return item.querySelector(".grid-stack-item-content");
}

// ---- The view -----------------------------------------------------------------------------

function startView(root) {
  const meta = JSON.parse(root.dataset.meta);
  const grid = makeGrid(root.querySelector(".grid-stack"), { staticGrid: true, animate: false });
  const pending = [];
  for (const widget of meta.widgets) {
    const item = grid.addWidget({ id: widget.id, x: widget.x, y: widget.y, w: widget.w, h: widget.h });
    item.dataset.widget = widget.id;
    item.dataset.type = widget.type;
    const { body } = widgetCard(contentOf(item), widget, widgetTitle(widget, widget.report_title));
    pending.push(fillWidget(body, widget, { reportsUrl: meta.reports_url, company: meta.company,
                                            available: widget.available }));
  }
  grid.updateOptions(RESPONSIVE);
  root.querySelector("#empty").hidden = meta.widgets.length > 0;
  Promise.allSettled(pending).then(() => { root.dataset.loaded = "true"; });
}

// ---- The builder --------------------------------------------------------------------------

function startBuilder(root) {
  const meta = JSON.parse(root.dataset.meta);
  const form = document.getElementById("builder-form");
  const layoutInput = document.getElementById("layout");
  const errorsBox = document.getElementById("builder-errors");
  const status = document.getElementById("save-status");
  const settings = document.getElementById("settings");
  const settingsForm = document.getElementById("settings-form");
  const empty = document.getElementById("empty");
  const reports = new Map(meta.palette.map((r) => [r.name, r]));
  const widgets = new Map(); // id -> {widget, item, body, heading, data}
  let selected = null;
  let dirty = false;
  let ready = false; // the stored widgets placed: a grid change from now on is the author's

  const gridElement = root.querySelector(".grid-stack");
  const grid = makeGrid(gridElement, {
    draggable: { handle: ".widget-head" },
    resizable: { handles: "se" },
  });

  const wide = () => grid.getColumn() === COLUMNS;
  function followWidth() {
    const roomy = window.innerWidth >= ONE_COLUMN_BELOW;
    grid.enableMove(roomy);
    grid.enableResize(roomy);
    root.classList.toggle("one-column", !roomy);
  }

  function newId() {
    let id;
    do id = "w" + Math.random().toString(36).slice(2, 9); while (widgets.has(id));
    return id;
  }

  function defaultReport() {
    return meta.palette.length ? meta.palette[0].name : "";
  }

  // Puts `widget` on the grid: at its place, or (a new one) at the first free place.
  function place(widget) {
    const [minW, minH] = MIN[widget.type] || [1, 1];
    const spec = { id: widget.id, w: widget.w, h: widget.h, minW, minH };
    if (Number.isInteger(widget.x) && Number.isInteger(widget.y)) Object.assign(spec, { x: widget.x, y: widget.y });
    else spec.autoPosition = true;
    const item = grid.addWidget(spec);
    item.dataset.widget = widget.id;
    item.dataset.type = widget.type;
    const entry = { widget, item, body: null, heading: null, data: null };
    widgets.set(widget.id, entry);
    if (wide()) remember([item.gridstackNode]);
    else if (!Number.isInteger(widget.y)) Object.assign(widget, { x: 0, y: bottom(widget) });
    const card = widgetCard(contentOf(item), widget, "");
    entry.body = card.body;
    entry.heading = card.heading;
    const buttons = el("span", "widget-buttons");
    const edit = el("button", "link-button widget-edit", "Edit");
    edit.type = "button";
    edit.addEventListener("click", () => select(widget.id));
    const remove = el("button", "link-button widget-remove", "✕");
    remove.type = "button";
    remove.addEventListener("click", () => removeWidget(widget.id));
    buttons.append(edit, remove);
    card.head.appendChild(buttons);
    grid.refreshDragHandles(item); // the title bar, made after gridstack set the item up
    refresh(entry);
    empty.hidden = true;
    return entry;
  }

  function refresh(entry) {
    const { widget } = entry;
    const report = reports.get(widget.report);
    const title = widgetTitle(widget, report ? report.title : "");
    entry.heading.textContent = title;
    entry.heading.title = title;
    entry.item.querySelector(".widget-edit").setAttribute("aria-label", "Edit " + title);
    entry.item.querySelector(".widget-remove").setAttribute("aria-label", "Remove " + title);
    fillWidget(entry.body, widget, { reportsUrl: meta.reports_url, company: companyForWidgets(),
                                     available: Boolean(report), defaultRows: meta.limits.default_rows })
      .then((data) => {
        entry.data = data;
        if (selected === widget.id) renderSettings(entry, false);
      });
  }

  // A company dashboard's widgets show that company; others the company the header shows.
  function companyForWidgets() {
    const visibility = document.getElementById("visibility");
    const company = document.getElementById("company");
    return visibility && company && visibility.value === "company" ? company.value : "";
  }

  function add(type) {
    if (widgets.size >= meta.limits.widgets) {
      showErrors([{ error: "A dashboard holds at most " + meta.limits.widgets + " widgets." }]);
      return null;
    }
    const [w, h] = SIZES[type];
    const widget = { id: newId(), type, report: defaultReport(), filters: {}, options: {}, w, h };
    if (type === "table") widget.options.rows = meta.limits.default_rows;
    const entry = place(widget);
    changed();
    select(widget.id);
    return entry;
  }

  function removeWidget(id) {
    const entry = widgets.get(id);
    if (!entry) return;
    destroyCharts(entry.item);
    grid.removeWidget(entry.item);
    widgets.delete(id);
    if (selected === id) closeSettings();
    empty.hidden = widgets.size > 0;
    changed();
  }

  function changed() {
    if (!ready) return;
    dirty = true;
    status.textContent = "Unsaved changes";
  }

  // Each widget keeps its 12-column place, taken from the grid only while it shows 12 columns
  // (stacked on a phone, the places on screen are not the layout's).
  function remember(nodes) {
    if (!wide()) return;
    for (const node of nodes || []) {
      const entry = widgets.get(String(node.id));
      if (entry) Object.assign(entry.widget, { x: node.x, y: node.y, w: node.w, h: node.h });
    }
  }

  function bottom(except) {
    let last = 0;
    for (const { widget } of widgets.values()) {
      if (widget !== except && Number.isInteger(widget.y)) last = Math.max(last, widget.y + widget.h);
    }
    return last;
  }

  function serialize() {
    return Array.from(widgets.values()).map(({ widget }) => ({
      id: widget.id, type: widget.type, report: widget.report, filters: widget.filters,
      options: widget.options, x: widget.x, y: widget.y, w: widget.w, h: widget.h,
    }));
  }

  // ---- The settings panel of the selected widget ----

  function select(id) {
    selected = id;
    for (const entry of widgets.values()) entry.item.classList.toggle("selected", entry.widget.id === id);
    renderSettings(widgets.get(id), true);
  }

  function closeSettings() {
    selected = null;
    settings.hidden = true;
    root.classList.remove("editing");
    for (const entry of widgets.values()) entry.item.classList.remove("selected");
  }

  function field(labelText, control, help) {
    const wrap = el("div", "field");
    const label = el("label", "", labelText);
    label.htmlFor = control.id;
    wrap.append(label, control);
    if (help) wrap.appendChild(el("span", "muted small", help));
    return wrap;
  }

  function selectOf(id, options, value) {
    const control = el("select");
    control.id = id;
    for (const [optionValue, text] of options) control.appendChild(new Option(text, optionValue));
    control.value = value;
    return control;
  }

  function filterControl(param, value) {
    const id = "setting-filter-" + param.name;
    let control;
    if (param.kind === "select") {
      control = selectOf(id, param.options, value || param.default || "");
    } else {
      control = el("input");
      control.id = id;
      control.type = param.kind === "date" ? "date" : "text";
      if (param.kind === "hidden") control.inputMode = "numeric";
      control.maxLength = 200;
      control.value = value || "";
      if (param.help) control.title = param.help;
    }
    control.dataset.filter = param.name;
    control.dataset.default = param.default || "";
    return field(param.label, control);
  }

  function renderSettings(entry, focus) {
    if (!entry) return;
    const { widget } = entry;
    const report = reports.get(widget.report);
    const type = meta.types.find((t) => t.type === widget.type);
    settingsForm.replaceChildren();
    document.getElementById("settings-title").textContent = (type ? type.label : "Widget") + " settings";
    const title = el("input");
    title.id = "setting-title";
    title.maxLength = 120;
    title.value = (widget.options && widget.options.title) || "";
    title.placeholder = report ? report.title : "";
    settingsForm.appendChild(field("Title", title, "Blank: the report's title"));
    const reportOptions = meta.palette.map((r) => [r.name, r.title]);
    if (!report && widget.report) reportOptions.unshift([widget.report, widget.report + " (not available to you)"]);
    const reportSelect = selectOf("setting-report", reportOptions, widget.report);
    settingsForm.appendChild(field("Report", reportSelect));
    reportSelect.addEventListener("change", () => {
      widget.report = reportSelect.value;
      widget.filters = {};
      for (const key of ["kpi", "columns", "sort", "dir"]) delete widget.options[key];
      changed();
      refresh(entry);
      renderSettings(entry, false);
    });
    if (report && report.params.length) {
      const filters = el("fieldset", "filters");
      filters.appendChild(el("legend", "", "Filters"));
      for (const param of report.params) filters.appendChild(filterControl(param, widget.filters[param.name]));
      settingsForm.appendChild(filters);
    }
    if (report && widget.type === "kpi") {
      const kpis = entry.data && entry.data.kpis ? entry.data.kpis : [];
      const options = [["", "The first figure"], ...kpis.map((k) => [k.key, k.label])];
      if (widget.options.kpi && !kpis.some((k) => k.key === widget.options.kpi)) options.push([widget.options.kpi, widget.options.kpi]);
      settingsForm.appendChild(field("Figure", selectOf("setting-kpi", options, widget.options.kpi || "")));
    }
    if (report && widget.type === "table") {
      const columns = el("fieldset", "columns");
      columns.appendChild(el("legend", "", "Columns (none ticked: all)"));
      const chosen = new Set(widget.options.columns || []);
      for (const column of report.columns) {
        const label = el("label", "check");
        const box = el("input");
        box.type = "checkbox";
        box.value = column.key;
        box.dataset.column = column.key;
        box.checked = chosen.has(column.key);
        label.append(box, document.createTextNode(" " + column.label));
        columns.appendChild(label);
      }
      settingsForm.appendChild(columns);
      const rows = el("input");
      rows.id = "setting-rows";
      rows.type = "number";
      rows.min = "1";
      rows.max = String(meta.limits.rows);
      rows.value = String(widget.options.rows || meta.limits.default_rows);
      settingsForm.appendChild(field("Rows shown", rows));
      const sortable = [["", "The report's order"], ...report.columns.filter((c) => c.sortable).map((c) => [c.key, c.label])];
      settingsForm.appendChild(field("Sort by", selectOf("setting-sort", sortable, widget.options.sort || "")));
      settingsForm.appendChild(field("Direction", selectOf("setting-dir", [["asc", "Ascending"], ["desc", "Descending"]], widget.options.dir || "asc")));
    }
    const actions = el("div", "builder-actions");
    const apply = el("button", "", "Apply");
    apply.type = "submit";
    apply.id = "settings-apply";
    const close = el("button", "secondary", "Close");
    close.type = "button";
    close.addEventListener("click", closeSettings);
    actions.append(apply, close);
    settingsForm.appendChild(actions);
    settings.hidden = false;
    root.classList.add("editing");
    settings.dataset.widget = widget.id;
    if (focus) title.focus();
  }

  settingsForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const entry = widgets.get(selected);
    if (!entry) return;
    const { widget } = entry;
    const options = {};
    const title = settingsForm.querySelector("#setting-title").value.trim();
    if (title) options.title = title;
    const filters = {};
    for (const control of settingsForm.querySelectorAll("[data-filter]")) {
      const value = control.value.trim();
      if (value && value !== control.dataset.default) filters[control.dataset.filter] = value;
    }
    const kpi = settingsForm.querySelector("#setting-kpi");
    if (kpi && kpi.value) options.kpi = kpi.value;
    const rows = settingsForm.querySelector("#setting-rows");
    if (rows) {
      const columns = Array.from(settingsForm.querySelectorAll("[data-column]")).filter((b) => b.checked).map((b) => b.value);
      if (columns.length) options.columns = columns;
      options.rows = Number(rows.value) || meta.limits.default_rows;
      const sort = settingsForm.querySelector("#setting-sort").value;
      if (sort) {
        options.sort = sort;
        options.dir = settingsForm.querySelector("#setting-dir").value;
      }
    }
    widget.options = options;
    widget.filters = filters;
    entry.item.classList.remove("has-error");
    changed();
    refresh(entry);
  });

  // ---- Saving ----

  function showErrors(errors) {
    const list = errorsBox.querySelector("ul");
    list.replaceChildren();
    for (const e of errors) list.appendChild(el("li", "", e.field && !/^(widgets|layout)/.test(e.field) ? e.field + ": " + e.error : e.error));
    errorsBox.hidden = errors.length === 0;
    for (const entry of widgets.values()) entry.item.classList.toggle("has-error", errors.some((e) => e.widget === entry.widget.id));
    const first = errors.find((e) => e.widget && widgets.has(e.widget));
    if (first) select(first.widget);
    if (errors.length) errorsBox.scrollIntoView({ block: "nearest" });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    layoutInput.value = JSON.stringify(serialize());
    status.textContent = "Saving…";
    let response;
    let body = {};
    try {
      response = await fetch(form.action, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      body = await response.json().catch(() => ({}));
    } catch (err) {
      status.textContent = "Not saved: " + err.message;
      return;
    }
    if (!response.ok) {
      const errors = body.errors || [{ field: body.field, error: body.error || "HTTP " + response.status, widget: body.widget }];
      showErrors(errors);
      status.textContent = "Not saved";
      root.dataset.saved = "error";
      return;
    }
    showErrors([]);
    dirty = false;
    status.textContent = "Saved";
    root.dataset.saved = String(body.id);
    if (form.action !== new URL(body.edit_url, window.location.href).href) {
      form.action = body.edit_url;
      window.history.replaceState(null, "", body.edit_url);
    }
  });

  window.addEventListener("beforeunload", (event) => {
    if (dirty) event.preventDefault();
  });

  // ---- Grid events ----

  grid.on("change", (event, nodes) => {
    remember(nodes);
    if (wide()) changed();
  });
  for (const button of document.querySelectorAll(".palette-item")) {
    button.addEventListener("click", () => add(button.dataset.type));
  }
  const visibility = document.getElementById("visibility");
  const companyField = document.getElementById("company-field");
  function followVisibility() {
    if (companyField) companyField.hidden = visibility.value !== "company";
  }
  if (visibility) {
    visibility.addEventListener("change", () => {
      followVisibility();
      for (const entry of widgets.values()) refresh(entry);
    });
    followVisibility();
  }
  const company = document.getElementById("company");
  if (company) company.addEventListener("change", () => { for (const entry of widgets.values()) refresh(entry); });

  grid.batchUpdate();
  for (const widget of meta.widgets) place(widget);
  grid.batchUpdate(false);
  grid.updateOptions(RESPONSIVE);
  empty.hidden = widgets.size > 0;
  followWidth();
  window.addEventListener("resize", followWidth);
  if (meta.errors && meta.errors.length) showErrors(meta.errors);
  ready = true;
  root.dataset.ready = "true";
}

if (GS) {
  const view = document.getElementById("built-dashboard");
  if (view) startView(view);
  const builder = document.getElementById("builder");
  if (builder) startBuilder(builder);
}
