"""The builder's document: what a person chose in the GUI, as JSON, strictly checked.

    {"version": 1, "base": "user",
     "joins": [{"relation": "user_enrolments.userid=user.id", "keep_unmatched": false}],
     "columns": [{"table": "user", "column": "lastname", "aggregate": null}],
     "filters": [{"table": "user", "column": "email", "op": "contains", "value": "@acme"}],
     "sort": [{"column": 0, "direction": "asc"}], "limit": 1000}

Each join adds the table at the other end of a known foreign key from a table already chosen.
When a column has an aggregate, the rows are grouped by every column without one. Filter
values stay values: `compile` binds each as a `:p1…` parameter. Anything unknown (a table,
column, relation, operator, aggregate or key) or out of bounds is a FieldError naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from common.errors import FieldError
from common.reportbuilder.schema import COMPANY_COLUMNS, BuilderSchema, ColumnInfo, ColumnType

VERSION = 1
MAX_DOCUMENT_CHARS = 64_000
MAX_JOINS = 7
MAX_COLUMNS = 40
MAX_FILTERS = 20
MAX_LIST_VALUES = 50
MAX_VALUE_CHARS = 200
MAX_SORT = 5
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
MAX_DAYS = 36_500

_EVERY: frozenset[ColumnType] = frozenset({"text", "int", "number", "datetime", "boolean"})
AGGREGATES: dict[str, tuple[str, frozenset[ColumnType]]] = {
    "count": ("Number of", _EVERY),
    "count_distinct": ("Number of different", _EVERY),
    "sum": ("Total", frozenset({"int", "number", "boolean"})),
    "avg": ("Average", frozenset({"int", "number", "boolean"})),
    "min": ("Lowest", frozenset({"text", "int", "number", "datetime"})),
    "max": ("Highest", frozenset({"text", "int", "number", "datetime"})),
}

_ORDERED: frozenset[ColumnType] = frozenset({"int", "number"})
_SCALAR: frozenset[ColumnType] = frozenset({"text", "int", "number"})
_ANY: frozenset[ColumnType] = frozenset({"text", "int", "number", "datetime"})

# op -> (label, the column types it applies to, the value it takes:
#        "one", "two" (between), "list", "date", "dates", "days", or None)
OPERATORS: dict[str, tuple[str, frozenset[ColumnType], str | None]] = {
    "eq": ("=", _SCALAR, "one"),
    "ne": ("≠", _SCALAR, "one"),
    "contains": ("contains", frozenset({"text"}), "one"),
    "starts_with": ("starts with", frozenset({"text"}), "one"),
    "lt": ("<", _ORDERED, "one"),
    "gt": (">", _ORDERED, "one"),
    "between": ("between", _ORDERED, "two"),
    "in": ("in list", _SCALAR, "list"),
    "is_empty": ("is empty", _ANY, None),
    "not_empty": ("is not empty", _ANY, None),
    "before": ("before", frozenset({"datetime"}), "date"),
    "after": ("after", frozenset({"datetime"}), "date"),
    "date_between": ("between dates", frozenset({"datetime"}), "dates"),
    "in_last_days": ("in the last N days", frozenset({"datetime"}), "days"),
    "is_true": ("is yes", frozenset({"boolean"}), None),
    "is_false": ("is no", frozenset({"boolean"}), None),
    # Only on COMPANY_COLUMNS: bound to the company the report runs for (`:companyid`).
    "viewer_company": ("is the viewer's company", frozenset({"int"}), None),
}
_INT = re.compile(r"-?[0-9]{1,18}")
_NUMBER = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,12})?")


@dataclass(frozen=True)
class ColumnRef:
    table: str
    column: str
    type: ColumnType
    label: str


@dataclass(frozen=True)
class Join:
    relation: str  # Relation.key
    table: str  # the table this join adds
    keep_unmatched: bool = False


@dataclass(frozen=True)
class OutputColumn:
    ref: ColumnRef
    aggregate: str | None = None

    @property
    def type(self) -> ColumnType:
        if self.aggregate in ("count", "count_distinct"):
            return "int"
        if self.aggregate == "avg":
            return "number"
        if self.aggregate == "sum" and self.ref.type == "boolean":
            return "int"
        return self.ref.type

    @property
    def label(self) -> str:
        if self.aggregate is None:
            return self.ref.label
        word = AGGREGATES[self.aggregate][0]
        if self.ref.type == "datetime" and self.aggregate in ("min", "max"):
            word = "Earliest" if self.aggregate == "min" else "Latest"
        return f"{word} {self.ref.label[:1].lower()}{self.ref.label[1:]}"


@dataclass(frozen=True)
class Filter:
    ref: ColumnRef
    op: str
    values: tuple[str, ...] = ()  # checked, as text: the driver gets them as parameters


@dataclass(frozen=True)
class Sort:
    column: int  # index into columns
    descending: bool = False


@dataclass(frozen=True)
class BuilderDocument:
    base: str
    joins: tuple[Join, ...]
    columns: tuple[OutputColumn, ...]
    filters: tuple[Filter, ...]
    sort: tuple[Sort, ...]
    limit: int = DEFAULT_LIMIT

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.base, *(j.table for j in self.joins))

    @property
    def grouped(self) -> bool:
        return any(c.aggregate for c in self.columns)

    @property
    def company_safe(self) -> bool:
        """Its rows are limited to the company it runs for (`:companyid`)."""
        return any(f.op == "viewer_company" for f in self.filters)

    def as_json(self) -> dict[str, Any]:
        """The canonical document (what is stored as the report's builder_json)."""
        return {
            "version": VERSION,
            "base": self.base,
            "joins": [{"relation": j.relation, "keep_unmatched": j.keep_unmatched}
                      for j in self.joins],
            "columns": [{"table": c.ref.table, "column": c.ref.column, "aggregate": c.aggregate}
                        for c in self.columns],
            "filters": [{"table": f.ref.table, "column": f.ref.column, "op": f.op,
                         "value": _stored_value(f)} for f in self.filters],
            "sort": [{"column": s.column, "direction": "desc" if s.descending else "asc"}
                     for s in self.sort],
            "limit": self.limit,
        }  # fmt: skip


def _stored_value(f: Filter) -> Any:
    shape = OPERATORS[f.op][2]
    if shape is None:
        return None
    if shape in ("list", "two", "dates"):
        return list(f.values)
    return f.values[0]


def parse_document(raw: object, schema: BuilderSchema) -> BuilderDocument:
    """The checked document (given as JSON text or as its parsed value: anything a client
    sent), or a FieldError naming the first thing wrong with it."""
    if isinstance(raw, str):
        if len(raw) > MAX_DOCUMENT_CHARS:
            raise FieldError("builder", f"the document is over {MAX_DOCUMENT_CHARS} characters")
        try:
            raw = json.loads(raw)
        except ValueError as error:
            raise FieldError("builder", f"not JSON: {error}") from None
    if not isinstance(raw, Mapping):
        raise FieldError("builder", "the document must be a JSON object")
    _only_keys(raw, "builder", {"version", "base", "joins", "columns", "filters", "sort",
                                "limit", "title", "description"})  # fmt: skip
    version = raw.get("version", VERSION)
    if version != VERSION:
        raise FieldError("version", f"unknown document version {_show(version)}")
    base = raw.get("base")
    if not isinstance(base, str) or schema.table(base) is None:
        raise FieldError("base", f"unknown table {_show(base)}")
    joins = _joins(raw.get("joins", []), base, schema)
    chosen = (base, *(j.table for j in joins))
    columns = _columns(raw.get("columns", []), chosen, schema)
    filters = _filters(raw.get("filters", []), chosen, schema)
    sort = _sort(raw.get("sort", []), len(columns))
    limit = raw.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise FieldError("limit", f"a whole number from 1 to {MAX_LIMIT}, not {_show(limit)}")
    return BuilderDocument(base, joins, columns, filters, sort, limit)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _only_keys(item: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(str(k) for k in item if k not in allowed)
    if unknown:
        raise FieldError(where, f"unknown key {_show(unknown[0])}")


def _list(raw: Any, where: str, most: int) -> list[Any]:
    if not isinstance(raw, list):
        raise FieldError(where, "must be a list")
    if len(raw) > most:
        raise FieldError(where, f"at most {most}, not {len(raw)}")
    return raw


def _object(item: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise FieldError(where, "must be an object")
    _only_keys(item, where, allowed)
    return item


def _joins(raw: Any, base: str, schema: BuilderSchema) -> tuple[Join, ...]:
    chosen = [base]
    joins = []
    for i, item in enumerate(_list(raw, "joins", MAX_JOINS)):
        where = f"joins[{i}]"
        item = _object(item, where, {"relation", "keep_unmatched", "table"})
        key = item.get("relation")
        relation = schema.relation(key) if isinstance(key, str) else None
        if relation is None:
            raise FieldError(where, f"unknown relation {_show(key)}")
        if (relation.child in chosen) == (relation.parent in chosen):
            present = "both" if relation.child in chosen else "neither"
            raise FieldError(
                where,
                f"relation {key} joins {present} of its tables to the report "
                "(it must add one new table to one already chosen)",
            )
        table = relation.parent if relation.child in chosen else relation.child
        keep = item.get("keep_unmatched", False)
        if not isinstance(keep, bool):
            raise FieldError(where, "keep_unmatched must be true or false")
        chosen.append(table)
        joins.append(Join(relation.key, table, keep))
    return tuple(joins)


def _ref(
    item: Mapping[str, Any], where: str, chosen: tuple[str, ...], schema: BuilderSchema
) -> ColumnRef:
    table = item.get("table")
    if not isinstance(table, str) or table not in chosen:
        raise FieldError(where, f"table {_show(table)} is not one of the report's tables")
    info = schema.tables[table]
    name = item.get("column")
    column: ColumnInfo | None = info.column(name) if isinstance(name, str) else None
    if column is None:
        raise FieldError(where, f"unknown column {_show(name)} of {info.label} ({table})")
    return ColumnRef(table, column.name, column.type, column.label)


def _columns(raw: Any, chosen: tuple[str, ...], schema: BuilderSchema) -> tuple[OutputColumn, ...]:
    items = _list(raw, "columns", MAX_COLUMNS)
    if not items:
        raise FieldError("columns", "choose at least one column")
    columns = []
    for i, item in enumerate(items):
        where = f"columns[{i}]"
        item = _object(item, where, {"table", "column", "aggregate"})
        ref = _ref(item, where, chosen, schema)
        aggregate = item.get("aggregate")
        if aggregate is not None:
            if not isinstance(aggregate, str) or aggregate not in AGGREGATES:
                raise FieldError(where, f"unknown aggregate {_show(aggregate)}")
            if ref.type not in AGGREGATES[aggregate][1]:
                reason = f"{aggregate} does not apply to {ref.type} column {ref.column}"
                raise FieldError(where, reason)
        columns.append(OutputColumn(ref, aggregate))
    return tuple(columns)


def _filters(raw: Any, chosen: tuple[str, ...], schema: BuilderSchema) -> tuple[Filter, ...]:
    filters = []
    for i, item in enumerate(_list(raw, "filters", MAX_FILTERS)):
        where = f"filters[{i}]"
        item = _object(item, where, {"table", "column", "op", "value"})
        ref = _ref(item, where, chosen, schema)
        op = item.get("op")
        if not isinstance(op, str) or op not in OPERATORS:
            raise FieldError(where, f"unknown operator {_show(op)}")
        _, types, shape = OPERATORS[op]
        if ref.type not in types:
            reason = f"operator {op} does not apply to {ref.type} column {ref.column}"
            raise FieldError(where, reason)
        if op == "viewer_company" and (ref.table, ref.column) not in COMPANY_COLUMNS:
            raise FieldError(where, f"{ref.table}.{ref.column} does not hold a company id")
        filters.append(Filter(ref, op, _values(item.get("value"), shape, ref.type, where)))
    return tuple(filters)


def _values(raw: Any, shape: str | None, kind: str, where: str) -> tuple[str, ...]:
    if shape is None:
        if raw not in (None, "", []):
            raise FieldError(where, "this operator takes no value")
        return ()
    if shape in ("two", "dates", "list"):
        most = MAX_LIST_VALUES if shape == "list" else 2
        items = _list(raw, where, most)
        if shape != "list" and len(items) != 2:
            raise FieldError(where, "between takes two values, a low and a high")
        if not items:
            raise FieldError(where, "the list needs at least one value")
        value_kind: str = "date" if shape == "dates" else kind
        return tuple(_value(v, value_kind, f"{where}.value[{n}]") for n, v in enumerate(items))
    value_kind = {"date": "date", "days": "days"}.get(shape, kind)
    return (_value(raw, value_kind, f"{where}.value"),)


def _value(raw: Any, kind: str, where: str) -> str:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise FieldError(where, f"expected a value, not {_show(raw)}")
    text = str(raw).strip()
    if not text:
        raise FieldError(where, "a value is needed")
    if len(text) > MAX_VALUE_CHARS:
        raise FieldError(where, f"at most {MAX_VALUE_CHARS} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise FieldError(where, "control characters (a NUL, a line break…) are not allowed")
    if kind == "int" and not _INT.fullmatch(text):
        raise FieldError(where, f"{_show(text)} is not a whole number")
    if kind == "number" and not _NUMBER.fullmatch(text):
        raise FieldError(where, f"{_show(text)} is not a number")
    if kind == "date":
        try:
            date.fromisoformat(text)
        except ValueError:
            raise FieldError(where, f"{_show(text)} is not a date (YYYY-MM-DD)") from None
        if len(text) != 10:
            raise FieldError(where, f"{_show(text)} is not a date (YYYY-MM-DD)")
    if kind == "days" and (not _INT.fullmatch(text) or not 1 <= int(text) <= MAX_DAYS):
        raise FieldError(where, f"a number of days from 1 to {MAX_DAYS}, not {_show(text)}")
    return text


def _sort(raw: Any, n_columns: int) -> tuple[Sort, ...]:
    sorts = []
    for i, item in enumerate(_list(raw, "sort", MAX_SORT)):
        where = f"sort[{i}]"
        item = _object(item, where, {"column", "direction"})
        index = item.get("column")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_columns:
            raise FieldError(where, f"column {_show(index)} is not one of the report's columns")
        direction = item.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise FieldError(where, f"direction is asc or desc, not {_show(direction)}")
        sorts.append(Sort(index, direction == "desc"))
    return tuple(sorts)
