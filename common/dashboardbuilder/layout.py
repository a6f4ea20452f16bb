"""The layout document of a built dashboard, and its strict validation.

A layout is a list of widgets on a 12-column grid; each shows one report (a KPI card, a line,
bar or pie chart, or a table) under its own filters — the report's parameters as raw strings,
the way a query string carries them, checked by the report's own `parse_params` — with
display options. The server trusts nothing the editor sends: every report must be one the
saver may run, every size is bounded, every filter parses, and widgets may not overlap (the
grid would shift them, and a reload would not show what was saved).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.errors import FieldError, FieldErrors, raise_all
from common.reports import Report

WIDGET_TYPES = ("kpi", "line", "bar", "pie", "table")
TYPE_LABELS = {"kpi": "KPI card", "line": "Line chart", "bar": "Bar chart", "pie": "Pie chart",
               "table": "Table"}  # fmt: skip
GRID_COLUMNS = 12
MAX_WIDGETS = 40
MAX_HEIGHT = 16  # rows of the grid a widget may span
MAX_ROW = MAX_WIDGETS * MAX_HEIGHT  # no widget starts below what 40 tall ones could fill
MAX_TABLE_ROWS = 100
DEFAULT_TABLE_ROWS = 10
MAX_COLUMNS_SHOWN = 30
TITLE_MAX = 120
FILTER_VALUE_MAX = 200
LAYOUT_JSON_MAX = 200_000  # characters: 40 widgets with every option fit many times over
DIRECTIONS = ("asc", "desc")

_WIDGET_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_KEY = re.compile(r"[a-z0-9_]{1,64}")
_POSITION = ("x", "y", "w", "h")
_WIDGET_KEYS = frozenset({"id", "type", "report", "filters", "options", *_POSITION})
_OPTION_KEYS = {
    "kpi": frozenset({"title", "kpi"}),
    "line": frozenset({"title"}),
    "bar": frozenset({"title"}),
    "pie": frozenset({"title"}),
    "table": frozenset({"title", "columns", "rows", "sort", "dir"}),
}

# The report `name` if the saver may run it; FieldError (field "report") saying why not.
ReportResolver = Callable[[str], Report]


class LayoutError(FieldError):
    """A widget of the layout is wrong: `widget` is its id (None: the document as a whole),
    so the editor can point at it."""

    def __init__(self, field: str, reason: str, *, widget: str | None = None) -> None:
        super().__init__(field, reason, status=422)
        self.widget = widget

    def as_dict(self) -> dict[str, str]:
        found = super().as_dict()
        if self.widget is not None:
            found["widget"] = self.widget
        return found


@dataclass(frozen=True)
class Widget:
    id: str
    type: str  # one of WIDGET_TYPES
    report: str  # the report's name (a registered report or `custom_<id>`)
    x: int
    y: int
    w: int
    h: int
    # The report's parameters as raw text (what a query string carries), only those set.
    filters: dict[str, str] = field(default_factory=dict)
    # title; kpi (kpi); columns, rows, sort, dir (table).
    options: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "report": self.report,
                "filters": dict(self.filters), "options": dict(self.options),
                "x": self.x, "y": self.y, "w": self.w, "h": self.h}  # fmt: skip

    @property
    def title(self) -> str:
        return str(self.options.get("title") or "")


def layout_json(widgets: list[Widget]) -> str:
    """The stored form: compact, keys sorted, so equal layouts are equal text."""
    return json.dumps([w.as_json() for w in widgets], sort_keys=True, separators=(",", ":"))


def stored_layout(text: str | None) -> list[dict[str, Any]]:
    """The stored document as it was saved (it was valid then; reports may have gone since,
    which each widget shows when it renders, so it is not validated again here)."""
    try:
        found = json.loads(text or "[]")
    except ValueError:
        return []
    return [w for w in found if isinstance(w, dict)] if isinstance(found, list) else []


def parse_layout(raw: str | list[Any], resolve: ReportResolver) -> list[Widget]:
    """Every widget of `raw` (JSON text or the decoded list) checked; all the problems found
    raised together (FieldErrors of LayoutError), naming the widget and what is wrong."""
    if isinstance(raw, str):
        if len(raw) > LAYOUT_JSON_MAX:
            raise LayoutError("layout", f"at most {LAYOUT_JSON_MAX} characters")
        try:
            raw = json.loads(raw or "[]")
        except json.JSONDecodeError as exc:
            raise LayoutError("layout", f"not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(raw, list):
        raise LayoutError("layout", "must be a list of widgets")
    if len(raw) > MAX_WIDGETS:
        raise LayoutError("layout", f"at most {MAX_WIDGETS} widgets (this one has {len(raw)})")
    widgets, errors, seen = [], [], set()
    for number, item in enumerate(raw, start=1):
        try:
            widget = parse_widget(item, number, resolve)
        except FieldError as exc:
            errors.extend(exc.errors)
            continue
        if widget.id in seen:
            errors.append(LayoutError(f"widgets[{number}].id",
                                      f"widget {number}: the id {widget.id!r} is used twice",
                                      widget=widget.id))  # fmt: skip
            continue
        seen.add(widget.id)
        widgets.append(widget)
    if not errors:
        errors.extend(_overlaps(widgets))
    raise_all(errors)
    return widgets


def _name(number: int, item: Mapping[str, Any]) -> str:
    """How an error names a widget: its number and, when it has one, its title."""
    options = item.get("options")
    title = options.get("title") if isinstance(options, Mapping) else None
    if isinstance(title, str) and title.strip():
        return f"widget {number} “{title.strip()[:TITLE_MAX]}”"
    return f"widget {number}"


def parse_widget(item: Any, number: int, resolve: ReportResolver) -> Widget:
    if not isinstance(item, Mapping):
        raise LayoutError(f"widgets[{number}]", f"widget {number}: must be an object")
    name = _name(number, item)
    raw_id = item.get("id")
    widget_id = raw_id if isinstance(raw_id, str) and _WIDGET_ID.fullmatch(raw_id) else None

    def error(where: str, reason: str) -> LayoutError:
        return LayoutError(f"widgets[{number}].{where}", f"{name}: {reason}", widget=widget_id)

    if widget_id is None:
        raise error("id", "its id must be 1 to 32 letters, digits, '-' or '_'")
    unknown = sorted(str(k) for k in item if k not in _WIDGET_KEYS)
    if unknown:
        raise error(unknown[0], f"unknown field {unknown[0][:40]!r}")
    kind = item.get("type")
    if kind not in WIDGET_TYPES:
        raise error("type", f"type must be one of {', '.join(WIDGET_TYPES)}")
    errors: list[FieldError] = []
    position = {}
    for key in _POSITION:
        try:
            position[key] = _bounded(item.get(key), key)
        except ValueError as exc:
            errors.append(error(key, str(exc)))
    if not errors and position["x"] + position["w"] > GRID_COLUMNS:
        errors.append(error("w", f"x + w must be at most {GRID_COLUMNS} (the grid's columns)"))
    report_name = item.get("report")
    if not isinstance(report_name, str) or not report_name:
        raise FieldErrors([*errors, error("report", "choose a report")])
    try:
        report = resolve(str(report_name)[:100])
    except FieldError as exc:
        raise FieldErrors([*errors, error("report", exc.reason)]) from None
    filters: dict[str, str] = {}
    try:
        filters = _filters(item.get("filters"), report, error)
    except FieldError as exc:
        errors.extend(exc.errors)
    options: dict[str, Any] = {}
    try:
        options = _options(str(kind), item.get("options"), report, error)
    except FieldError as exc:
        errors.extend(exc.errors)
    raise_all(errors)
    return Widget(id=widget_id, type=str(kind), report=report.type_name, filters=filters,
                  options=options, **position)  # fmt: skip


_BOUNDS = {"x": (0, GRID_COLUMNS - 1), "y": (0, MAX_ROW), "w": (1, GRID_COLUMNS),
           "h": (1, MAX_HEIGHT)}  # fmt: skip


def _bounded(value: Any, key: str) -> int:
    low, high = _BOUNDS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be a whole number from {low} to {high}")
    return value


def _filters(raw: Any, report: Report, error: Callable[[str, str], LayoutError]) -> dict[str, str]:
    """The filters as text, checked by the report's own parser (a bad one names the widget,
    the filter and why)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise error("filters", "filters must be an object of name: value")
    declared = {p.name: p for p in report.params}
    filters: dict[str, str] = {}
    errors: list[FieldError] = []
    for name, value in raw.items():
        if name not in declared:
            known = ", ".join(declared) or "none"
            errors.append(error(f"filters.{str(name)[:40]}",
                                f"the {report.title} report has no filter {str(name)[:40]!r} "
                                f"(its filters: {known})"))  # fmt: skip
            continue
        if value is None or value == "":
            continue
        if not isinstance(value, str | int) or isinstance(value, bool):
            errors.append(error(f"filters.{name}", f"filter {declared[name].label}: must be text"))
            continue
        text = str(value).strip()
        if len(text) > FILTER_VALUE_MAX:
            errors.append(error(f"filters.{name}", f"filter {declared[name].label}: at most "
                                f"{FILTER_VALUE_MAX} characters"))  # fmt: skip
            continue
        if text:
            filters[name] = text
    raise_all(errors)
    try:
        report.parse_params(filters)
    except FieldError as exc:
        label = declared[exc.field].label if exc.field in declared else exc.field
        raise error(f"filters.{exc.field}", f"filter {label}: {exc.reason}") from None
    return filters


def _options(
    kind: str, raw: Any, report: Report, error: Callable[[str, str], LayoutError]
) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise error("options", "options must be an object")
    unknown = sorted(str(k) for k in raw if k not in _OPTION_KEYS[kind])
    if unknown:
        raise error(f"options.{unknown[0][:40]}",
                    f"a {TYPE_LABELS[kind]} has no option {unknown[0][:40]!r}")  # fmt: skip
    options: dict[str, Any] = {}
    errors: list[FieldError] = []
    title = raw.get("title", "")
    if not isinstance(title, str) or len(title.strip()) > TITLE_MAX:
        errors.append(error("options.title", f"title: text of at most {TITLE_MAX} characters"))
    elif title.strip():
        options["title"] = title.strip()
    if kind == "kpi":
        kpi = raw.get("kpi", "")
        if kpi not in ("", None) and not (isinstance(kpi, str) and _KEY.fullmatch(kpi)):
            errors.append(error("options.kpi", "kpi: the key of one of the report's figures"))
        elif kpi:
            options["kpi"] = kpi
    if kind == "table":
        errors.extend(_table_options(raw, report, options, error))
    raise_all(errors)
    return options


def _table_options(
    raw: Mapping[str, Any],
    report: Report,
    options: dict[str, Any],
    error: Callable[[str, str], LayoutError],
) -> list[FieldError]:
    errors: list[FieldError] = []
    keys = [c.key for c in report.columns]
    columns = raw.get("columns", [])
    if columns in (None, ""):
        columns = []
    if not isinstance(columns, list) or len(columns) > MAX_COLUMNS_SHOWN:
        errors.append(error("options.columns", "columns: a list of the report's column keys"))
    else:
        wrong = [str(c)[:40] for c in columns if c not in keys]
        if wrong:
            errors.append(error("options.columns", f"columns: the {report.title} report has no "
                                f"column {wrong[0]!r}"))  # fmt: skip
        elif columns:
            options["columns"] = [k for k in keys if k in columns]  # the report's order
    rows = raw.get("rows", DEFAULT_TABLE_ROWS)
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= MAX_TABLE_ROWS:
        errors.append(error("options.rows", f"rows shown: a whole number from 1 to "
                            f"{MAX_TABLE_ROWS}"))  # fmt: skip
    else:
        options["rows"] = rows
    sort = raw.get("sort", "")
    if sort not in ("", None):
        column = report.column(sort) if isinstance(sort, str) else None
        if column is None or not column.sortable:
            errors.append(error("options.sort", f"sort: the {report.title} report has no "
                                f"sortable column {str(sort)[:40]!r}"))  # fmt: skip
        else:
            options["sort"] = sort
    direction = raw.get("dir", "asc")
    if direction not in DIRECTIONS:
        errors.append(error("options.dir", "dir: asc or desc"))
    elif "sort" in options:
        options["dir"] = direction
    return errors


def _overlaps(widgets: list[Widget]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, a in enumerate(widgets):
        for b in widgets[:i]:
            if a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h:
                errors.append(LayoutError(
                    f"widgets[{i + 1}].x",
                    f"widget {i + 1}{_titled(a)} overlaps widget {widgets.index(b) + 1}"
                    f"{_titled(b)}: move one of them", widget=a.id,
                ))  # fmt: skip
                break
    return errors


def _titled(widget: Widget) -> str:
    return f" “{widget.title}”" if widget.title else ""
