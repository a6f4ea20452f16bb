// The report builder: the document (base table, joins, columns, filters, sort) lives here
// and is drawn into the form; every change asks the server for a preview (debounced), which
// checks and compiles it exactly as saving does. An error is shown, never a reset: the
// document stays as the person left it.
(function () {
  "use strict";

  var root = document.getElementById("report-builder");
  if (!root) { return; }
  var schema = JSON.parse(document.getElementById("rb-schema").textContent);
  var loaded = JSON.parse(document.getElementById("rb-document").textContent);
  var tables = {};
  schema.tables.forEach(function (t) {
    t.byName = {};
    t.columns.forEach(function (c) { t.byName[c.name] = c; });
    tables[t.name] = t;
  });
  var relations = {};
  schema.relations.forEach(function (r) { relations[r.key] = r; });

  var AGGREGATES = {
    count: ["Count", ["text", "int", "number", "datetime", "boolean"]],
    count_distinct: ["Count distinct", ["text", "int", "number", "datetime", "boolean"]],
    sum: ["Total", ["int", "number", "boolean"]],
    avg: ["Average", ["int", "number", "boolean"]],
    min: ["Lowest", ["text", "int", "number", "datetime"]],
    max: ["Highest", ["text", "int", "number", "datetime"]]
  };
  var SCALAR = ["text", "int", "number"], ORDERED = ["int", "number"];
  var ANY = ["text", "int", "number", "datetime"];
  var OPERATORS = [
    ["eq", "=", SCALAR, "one"], ["ne", "≠", SCALAR, "one"],
    ["contains", "contains", ["text"], "one"], ["starts_with", "starts with", ["text"], "one"],
    ["lt", "<", ORDERED, "one"], ["gt", ">", ORDERED, "one"],
    ["between", "between", ORDERED, "two"], ["in", "in list", SCALAR, "list"],
    ["before", "before", ["datetime"], "date"], ["after", "after", ["datetime"], "date"],
    ["date_between", "between dates", ["datetime"], "dates"],
    ["in_last_days", "in the last N days", ["datetime"], "days"],
    ["is_true", "is yes", ["boolean"], null], ["is_false", "is no", ["boolean"], null],
    ["is_empty", "is empty", ANY, null], ["not_empty", "is not empty", ANY, null],
    // Only on a column holding a company id: the report then runs for the viewer's company.
    ["viewer_company", "is the viewer's company", ["int"], null]
  ];
  function operatorsFor(info) {
    return OPERATORS.filter(function (o) {
      return o[2].indexOf(info.type) >= 0 && (o[0] !== "viewer_company" || info.company);
    });
  }
  var SHAPES = {};
  OPERATORS.forEach(function (o) { SHAPES[o[0]] = o[3]; });
  var VALUES_MAX = 100;

  var doc = normalise(loaded);
  var valuesCache = {};
  var previewTimer = null, previewSeq = 0, openTable = doc.base;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; }
      else if (k === "hidden" || k === "checked" || k === "selected" || k === "multiple" || k === "open") { node[k] = !!attrs[k]; }
      else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }
  function option(value, label, selected) { return el("option", { value: value, text: label, selected: selected }); }
  function byId(id) { return document.getElementById(id); }

  function normalise(d) {
    var first = schema.tables.filter(function (t) { return t.name === "user"; })[0] || schema.tables[0];
    d = d || {};
    return {
      version: 1,
      base: tables[d.base] ? d.base : (first ? first.name : ""),
      joins: (d.joins || []).map(function (j) { return { relation: j.relation, keep_unmatched: !!j.keep_unmatched }; }),
      columns: (d.columns || []).map(function (c) { return { table: c.table, column: c.column, aggregate: c.aggregate || null }; }),
      filters: (d.filters || []).map(function (f) { return { table: f.table, column: f.column, op: f.op, value: f.value === undefined ? null : f.value }; }),
      sort: (d.sort || []).slice(0, 1).map(function (s) { return { column: s.column, direction: s.direction || "asc" }; }),
      limit: d.limit || 1000
    };
  }

  // The tables in the document, in order: the base, then each join's new table.
  function chosenTables() {
    var chosen = [doc.base];
    doc.joins.forEach(function (j) {
      var r = relations[j.relation];
      if (!r) { return; }
      chosen.push(chosen.indexOf(r.child) >= 0 ? r.parent : r.child);
    });
    return chosen;
  }
  function column(table, name) { return tables[table] && tables[table].byName[name]; }
  function columnName(table, name) {
    var c = column(table, name);
    return tables[table].label + " › " + (c ? c.label : name);
  }

  // Joins whose tables were removed go, and with them the columns and filters of tables gone.
  function prune() {
    var chosen = [doc.base];
    doc.joins = doc.joins.filter(function (j) {
      var r = relations[j.relation];
      if (!r || (chosen.indexOf(r.child) >= 0) === (chosen.indexOf(r.parent) >= 0)) { return false; }
      chosen.push(chosen.indexOf(r.child) >= 0 ? r.parent : r.child);
      return true;
    });
    var sortKey = sortedKey();
    doc.columns = doc.columns.filter(function (c) { return chosen.indexOf(c.table) >= 0 && column(c.table, c.column); });
    doc.filters = doc.filters.filter(function (f) { return chosen.indexOf(f.table) >= 0 && column(f.table, f.column); });
    setSortKey(sortKey);
  }

  function keyOf(c) { return c.table + "." + c.column + "." + (c.aggregate || ""); }
  function sortedKey() {
    var s = doc.sort[0];
    return s && doc.columns[s.column] ? keyOf(doc.columns[s.column]) : "";
  }
  function setSortKey(key, direction) {
    var dir = direction || (doc.sort[0] ? doc.sort[0].direction : "asc");
    var index = doc.columns.map(keyOf).indexOf(key);
    doc.sort = index >= 0 ? [{ column: index, direction: dir }] : [];
  }

  function relationLabel(r, chosen) {
    var key = (column(r.child, r.column) || { label: r.column }).label;
    if (chosen.indexOf(r.child) >= 0) { return tables[r.parent].label + " (by " + tables[r.child].label + " › " + key + ")"; }
    return tables[r.child].label + " (by " + key + ")";
  }

  function renderData() {
    var base = byId("rb-base");
    base.replaceChildren.apply(base, schema.tables.map(function (t) { return option(t.name, t.label, t.name === doc.base); }));
    var chosen = chosenTables();
    var list = byId("rb-joins");
    list.replaceChildren.apply(list, doc.joins.map(function (j, i) {
      var r = relations[j.relation];
      var before = chosenTables().slice(0, i + 1);
      var keep = el("input", { type: "checkbox", id: "rb-keep-" + i, checked: j.keep_unmatched });
      keep.addEventListener("change", function () { j.keep_unmatched = keep.checked; changed(); });
      var remove = el("button", { type: "button", class: "link-like", text: "Remove", "aria-label": "Remove " + tables[chosen[i + 1]].label });
      remove.addEventListener("click", function () { doc.joins.splice(i, 1); prune(); changed(); });
      return el("li", { class: "rb-item" }, [
        el("span", { class: "rb-item-name", text: relationLabel(r, before) }),
        el("label", { class: "rb-check", for: "rb-keep-" + i }, [keep, document.createTextNode("keep rows without a match")]),
        remove
      ]);
    }));
    var select = byId("rb-relation");
    var offered = schema.relations.filter(function (r) {
      return (chosen.indexOf(r.child) >= 0) !== (chosen.indexOf(r.parent) >= 0);
    }).map(function (r) { return [r.key, relationLabel(r, chosen)]; });
    offered.sort(function (a, b) { return a[1].localeCompare(b[1]); });
    select.replaceChildren.apply(select, offered.map(function (o) { return option(o[0], o[1]); }));
    byId("rb-join-add").hidden = offered.length === 0 || doc.joins.length >= 7;
  }

  function renderPickers() {
    var box = byId("rb-pickers");
    var picked = {};
    doc.columns.forEach(function (c) { picked[c.table + "." + c.column] = true; });
    box.replaceChildren.apply(box, chosenTables().map(function (name) {
      var t = tables[name];
      var boxes = t.columns.map(function (c) {
        var id = "rb-col-" + name + "-" + c.name;
        var input = el("input", { type: "checkbox", id: id, checked: picked[name + "." + c.name] });
        input.addEventListener("change", function () {
          openTable = name;
          if (input.checked) { doc.columns.push({ table: name, column: c.name, aggregate: null }); }
          else {
            var key = sortedKey();
            doc.columns = doc.columns.filter(function (x) { return !(x.table === name && x.column === c.name); });
            setSortKey(key);
          }
          changed();
        });
        return el("label", { class: "rb-check", for: id }, [input, document.createTextNode(c.label), el("span", { class: "rb-type", text: c.type })]);
      });
      var details = el("details", { class: "rb-picker", open: name === openTable }, [
        el("summary", { text: t.label + " columns" }), el("div", { class: "rb-grid" }, boxes)
      ]);
      details.addEventListener("toggle", function () { if (details.open) { openTable = name; } });
      return details;
    }));
  }

  function renderColumns() {
    var list = byId("rb-columns");
    byId("rb-no-columns").hidden = doc.columns.length > 0;
    list.replaceChildren.apply(list, doc.columns.map(function (c, i) {
      var type = column(c.table, c.column).type;
      var id = "rb-agg-" + i;
      var agg = el("select", { id: id }, [option("", "Show each value", !c.aggregate)].concat(
        Object.keys(AGGREGATES).filter(function (a) { return AGGREGATES[a][1].indexOf(type) >= 0; })
          .map(function (a) { return option(a, AGGREGATES[a][0], c.aggregate === a); })));
      agg.addEventListener("change", function () {
        var key = sortedKey(), wasSorted = key === keyOf(c);
        c.aggregate = agg.value || null;
        setSortKey(wasSorted ? keyOf(c) : key);
        changed();
      });
      var up = el("button", { type: "button", class: "link-like", text: "↑", "aria-label": "Move " + columnName(c.table, c.column) + " up" });
      up.disabled = i === 0;
      up.addEventListener("click", function () { move(i, -1); });
      var remove = el("button", { type: "button", class: "link-like", text: "Remove", "aria-label": "Remove " + columnName(c.table, c.column) });
      remove.addEventListener("click", function () {
        var key = sortedKey();
        doc.columns.splice(i, 1);
        setSortKey(key);
        changed();
      });
      return el("li", { class: "rb-item" }, [
        el("span", { class: "rb-item-name", text: columnName(c.table, c.column) }),
        el("label", { class: "visually-hidden", for: id, text: "Summary of " + columnName(c.table, c.column) }), agg, up, remove
      ]);
    }));
  }

  function move(i, step) {
    var key = sortedKey();
    var moved = doc.columns.splice(i, 1)[0];
    doc.columns.splice(i + step, 0, moved);
    setSortKey(key);
    changed();
  }

  function defaultValue(shape) {
    if (shape === "two" || shape === "dates") { return ["", ""]; }
    if (shape === "list") { return []; }
    if (shape === "days") { return "30"; }
    return shape ? "" : null;
  }

  function complete(f) {
    var shape = SHAPES[f.op];
    if (!shape) { return true; }
    if (Array.isArray(f.value)) { return f.value.length > 0 && f.value.every(function (v) { return String(v).trim() !== ""; }); }
    return f.value !== null && String(f.value).trim() !== "";
  }

  function loadValues(f, then) {
    var key = f.table + "." + f.column;
    if (valuesCache[key]) { then(valuesCache[key]); return; }
    var url = root.dataset.valuesUrl + "?" + new URLSearchParams({ table: f.table, column: f.column });
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (body) { valuesCache[key] = body.ok ? body.values : []; then(valuesCache[key]); })
      .catch(function () { valuesCache[key] = []; then([]); });
  }

  function input(f, type, index, label) {
    var kind = type === "date" ? "date" : (type === "int" || type === "number" || type === "days") ? "number" : "text";
    var id = "rb-filter-" + doc.filters.indexOf(f) + "-v" + index;
    var current = Array.isArray(f.value) ? f.value[index] : f.value;
    var box = el("input", { type: kind, id: id, value: current === null || current === undefined ? "" : current });
    if (type === "days") { box.min = "1"; }
    if (type === "number") { box.step = "any"; }
    box.addEventListener("input", function () {
      if (Array.isArray(f.value)) { f.value[index] = box.value; } else { f.value = box.value; }
      changed(true);
    });
    return el("span", { class: "rb-value" }, [el("label", { class: "visually-hidden", for: id, text: label }), box]);
  }

  // The value inputs that fit the column and operator: a dropdown of the column's values
  // when there are fewer than VALUES_MAX of them, a date picker for dates, else a box.
  function valueInputs(f, holder, label) {
    var type = column(f.table, f.column).type, shape = SHAPES[f.op];
    var id = "rb-filter-" + doc.filters.indexOf(f) + "-v0";
    if (shape === "date") { holder.replaceChildren(input(f, "date", 0, label)); return; }
    if (shape === "dates") { holder.replaceChildren(input(f, "date", 0, label + " from"), input(f, "date", 1, label + " to")); return; }
    if (shape === "days") { holder.replaceChildren(input(f, "days", 0, label + " (days)")); return; }
    if (shape === "two") { holder.replaceChildren(input(f, type, 0, label + " from"), input(f, type, 1, label + " to")); return; }
    if (!shape) { holder.replaceChildren(); return; }
    var dropdown = (f.op === "eq" || f.op === "ne" || f.op === "in") && (type === "text" || type === "int");
    if (!dropdown) { holder.replaceChildren(input(f, type, 0, label)); return; }
    holder.replaceChildren(el("span", { class: "muted small", text: "Loading values…" }));
    loadValues(f, function (values) {
      if (values.length >= VALUES_MAX || values.length === 0) {
        if (f.op === "in") {
          var area = el("textarea", { id: id, rows: "3", placeholder: "One value per line" });
          area.value = (f.value || []).join("\n");
          area.addEventListener("input", function () {
            f.value = area.value.split("\n").map(function (v) { return v.trim(); }).filter(Boolean);
            changed(true);
          });
          holder.replaceChildren(el("label", { class: "visually-hidden", for: id, text: label }), area);
        } else {
          holder.replaceChildren(input(f, type, 0, label));
        }
        return;
      }
      var chosen = Array.isArray(f.value) ? f.value.map(String) : [String(f.value || "")];
      var select = el("select", { id: id, multiple: f.op === "in" }, (f.op === "in" ? [] : [option("", "Choose…", !f.value)]).concat(
        values.map(function (v) { return option(String(v), String(v), chosen.indexOf(String(v)) >= 0); })));
      select.addEventListener("change", function () {
        if (f.op === "in") { f.value = Array.prototype.filter.call(select.options, function (o) { return o.selected; }).map(function (o) { return o.value; }); }
        else { f.value = select.value; }
        changed(true);
      });
      holder.replaceChildren(el("label", { class: "visually-hidden", for: id, text: label }), select);
    });
  }

  function renderFilters() {
    var list = byId("rb-filters");
    list.replaceChildren.apply(list, doc.filters.map(function (f, i) {
      var name = columnName(f.table, f.column);
      var opId = "rb-filter-" + i + "-op";
      var ops = el("select", { id: opId }, operatorsFor(column(f.table, f.column))
        .map(function (o) { return option(o[0], o[1], o[0] === f.op); }));
      var holder = el("span", { class: "rb-values-in" });
      ops.addEventListener("change", function () {
        var before = SHAPES[f.op];
        f.op = ops.value;
        if (SHAPES[f.op] !== before) { f.value = defaultValue(SHAPES[f.op]); }
        valueInputs(f, holder, name);
        changed(true);
      });
      valueInputs(f, holder, name);
      var remove = el("button", { type: "button", class: "link-like", text: "Remove", "aria-label": "Remove the filter on " + name });
      remove.addEventListener("click", function () { doc.filters.splice(i, 1); changed(); });
      return el("li", { class: "rb-item rb-filter" + (complete(f) ? "" : " incomplete") }, [
        el("span", { class: "rb-item-name", text: name }),
        el("label", { class: "visually-hidden", for: opId, text: "Operator for " + name }), ops, holder, remove
      ]);
    }));
    var select = byId("rb-filter-column");
    select.replaceChildren.apply(select, chosenTables().map(function (name) {
      var group = el("optgroup", { label: tables[name].label });
      tables[name].columns.forEach(function (c) { group.appendChild(option(name + "." + c.name, c.label)); });
      return group;
    }));
  }

  function renderSort() {
    var select = byId("rb-sort"), key = sortedKey();
    select.replaceChildren.apply(select, [option("", "Database order", !key)].concat(doc.columns.map(function (c) {
      var label = columnName(c.table, c.column) + (c.aggregate ? " (" + AGGREGATES[c.aggregate][0].toLowerCase() + ")" : "");
      return option(keyOf(c), label, keyOf(c) === key);
    })));
    byId("rb-direction").value = doc.sort[0] ? doc.sort[0].direction : "asc";
    byId("rb-limit").value = doc.limit;
  }

  function render() { renderData(); renderPickers(); renderColumns(); renderFilters(); renderSort(); }

  // valueOnly: an input changed its own value; the form around it stays as it is.
  function changed(valueOnly) {
    if (!valueOnly) { render(); }
    else {
      doc.filters.forEach(function (f, i) {
        var item = byId("rb-filters").children[i];
        if (item) { item.classList.toggle("incomplete", !complete(f)); }
      });
    }
    schedulePreview();
  }

  // The document as sent: a filter not yet given its value is left out of the preview.
  function sent(forPreview) {
    var copy = JSON.parse(JSON.stringify(doc));
    if (forPreview) { copy.filters = copy.filters.filter(complete); }
    copy.limit = parseInt(copy.limit, 10) || 1000;
    return copy;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": root.dataset.csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return { ok: false, errors: [{ field: "", error: "HTTP " + r.status }] }; });
    });
  }

  function showErrors(box, errors) {
    box.replaceChildren.apply(box, (errors || []).map(function (e) {
      return el("p", { text: (e.field ? e.field + ": " : "") + e.error });
    }));
    box.hidden = !errors || errors.length === 0;
  }

  function schedulePreview() {
    clearTimeout(previewTimer);
    byId("rb-status").textContent = "Updating…";
    previewTimer = setTimeout(runPreview, 400);
  }

  function runPreview() {
    var seq = ++previewSeq, table = byId("rb-preview");
    if (doc.columns.length === 0) {
      byId("rb-status").textContent = "Choose a column to see rows.";
      table.querySelector("thead tr").replaceChildren();
      table.querySelector("tbody").replaceChildren();
      byId("rb-sql-text").value = "";
      showErrors(byId("rb-errors"), []);
      table.dataset.loaded = String(seq);
      return;
    }
    post(root.dataset.previewUrl, { document: sent(true) }).then(function (body) {
      if (seq !== previewSeq) { return; }
      if (!body.ok) {
        showErrors(byId("rb-errors"), body.errors);
        byId("rb-status").textContent = "Not updated: see the error.";
        table.dataset.loaded = String(seq);
        return;
      }
      showErrors(byId("rb-errors"), []);
      var head = table.querySelector("thead tr"), rows = table.querySelector("tbody");
      head.replaceChildren.apply(head, body.columns.map(function (c) { return el("th", { scope: "col", text: c.label }); }));
      rows.replaceChildren.apply(rows, body.rows.map(function (row) {
        return el("tr", {}, row.map(function (v, i) {
          var numeric = ["int", "number"].indexOf(body.columns[i].type) >= 0;
          return el("td", { class: numeric ? "num" : "", text: v === null ? "" : String(v) });
        }));
      }));
      byId("rb-status").textContent = body.rows.length === 0 ? "No rows match."
        : "First " + body.rows.length + " rows" + (body.more ? " (more not shown)" : "") + " · " + body.elapsed_ms + " ms";
      byId("rb-sql-text").value = body.sql;
      var values = byId("rb-values");
      values.replaceChildren.apply(values, body.values.map(function (v) {
        return el("li", { text: ":" + v.name + " = " + JSON.stringify(v.value) + " (" + v.label + ")" });
      }));
      table.dataset.loaded = String(seq);
    }).catch(function () {
      if (seq === previewSeq) { byId("rb-status").textContent = "The preview could not be loaded."; }
    });
  }

  byId("rb-base").addEventListener("change", function () {
    doc = normalise({ base: byId("rb-base").value, limit: doc.limit });
    openTable = doc.base;
    changed();
  });
  byId("rb-add-join").addEventListener("click", function () {
    var key = byId("rb-relation").value;
    if (!key) { return; }
    doc.joins.push({ relation: key, keep_unmatched: false });
    var chosen = chosenTables();
    openTable = chosen[chosen.length - 1];
    changed();
  });
  byId("rb-add-filter").addEventListener("click", function () {
    var parts = byId("rb-filter-column").value.split(".");
    if (parts.length !== 2) { return; }
    var op = operatorsFor(column(parts[0], parts[1]))[0];
    doc.filters.push({ table: parts[0], column: parts[1], op: op[0], value: defaultValue(op[3]) });
    changed();
  });
  byId("rb-sort").addEventListener("change", function () { setSortKey(byId("rb-sort").value, byId("rb-direction").value); changed(); });
  byId("rb-direction").addEventListener("change", function () { setSortKey(sortedKey(), byId("rb-direction").value); changed(); });
  byId("rb-limit").addEventListener("input", function () { doc.limit = byId("rb-limit").value; changed(true); });

  byId("rb-save-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var button = byId("rb-save");
    button.disabled = true;
    byId("rb-saved").textContent = "Saving…";
    var reportId = root.dataset.reportId ? parseInt(root.dataset.reportId, 10) : null;
    post(root.dataset.saveUrl, {
      document: sent(false), title: byId("rb-title").value,
      description: byId("rb-description").value, report_id: reportId
    }).then(function (body) {
      button.disabled = false;
      if (!body.ok) {
        byId("rb-saved").textContent = "Not saved: " + body.errors.map(function (e) { return e.field + ": " + e.error; }).join("; ");
        byId("rb-saved").className = "small error";
        return;
      }
      root.dataset.reportId = String(body.id);
      byId("rb-saved").className = "small";
      byId("rb-saved").textContent = "Saved as report " + body.name + ".";
      var run = byId("rb-run"), csv = byId("rb-csv");
      run.href = body.run_url; run.hidden = false;
      csv.href = body.run_url + "/export.csv"; csv.hidden = false;
      if (window.history && history.replaceState) { history.replaceState(null, "", body.edit_url); }
    }).catch(function () {
      button.disabled = false;
      byId("rb-saved").textContent = "Not saved: the server could not be reached. Nothing you built was lost.";
    });
  });

  prune();
  render();
  schedulePreview();
}());
