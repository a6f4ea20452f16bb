"""A builder document compiled to one SELECT, built as sqlglot expressions.

Names in the SQL come only from the builder schema (tables as `prefix_<name>`, resolved to the
site's prefix by the validator as Moodle does; columns as Moodle names them); every value a
person typed is a `:p1…` placeholder bound by the driver. The SQL is then checked by the same
validator as a hand-written custom report (`compile_checked`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from common.reportbuilder.document import (
    OPERATORS,
    BuilderDocument,
    ColumnRef,
    Filter,
    OutputColumn,
)
from common.reportbuilder.schema import BuilderSchema, ColumnType

if TYPE_CHECKING:
    from common.customsql.params import QueryParam
    from common.customsql.validator import CheckedQuery

DAY_S = 86_400
COMPANY_PLACEHOLDER = "companyid"  # common.customsql.params.COMPANY_PARAM
MAX_NAME_CHARS = 60
_Sql = exp.Expression | exp.Condition
_UNSAFE = re.compile(r"[^A-Za-z0-9 ]+")
# Column type -> how the report page shows it (common.reports.base.COLUMN_KINDS).
REPORT_KINDS: dict[ColumnType, str] = {
    "text": "text", "int": "int", "number": "float", "datetime": "datetime", "boolean": "int",
}  # fmt: skip
# Column type -> the parameter type its filter values are bound as (customsql PARAM_TYPES).
PARAM_TYPES: dict[str, str] = {"text": "text", "int": "int", "number": "text", "date": "date",
                               "days": "int"}  # fmt: skip


@dataclass(frozen=True)
class BoundValue:
    """One `:name` placeholder and the value the document gives it."""

    name: str
    type: str  # text | int | date
    label: str
    value: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type, "label": self.label, "value": self.value}


@dataclass(frozen=True)
class ResultColumn:
    key: str
    label: str
    type: ColumnType

    @property
    def kind(self) -> str:
        return REPORT_KINDS[self.type]

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "label": self.label, "type": self.type, "kind": self.kind}


@dataclass(frozen=True)
class CompiledReport:
    sql: str  # MySQL dialect, as shown to the author and stored as the report's SQL
    values: tuple[BoundValue, ...]
    columns: tuple[ResultColumn, ...]
    company_safe: bool = False  # uses :companyid, bound to the company it runs for

    def bind(self) -> dict[str, str]:
        return {v.name: v.value for v in self.values}

    def query_params(self) -> list[QueryParam]:
        """The placeholders as a stored report declares them, each defaulting to its value."""
        from common.customsql.params import COMPANY_PARAM, QueryParam

        declared = [
            QueryParam(name=v.name, type=v.type, label=v.label, required=True, default=v.value)
            for v in self.values
        ]
        if self.company_safe:
            declared.append(QueryParam(name=COMPANY_PARAM, type="company", label="Company"))
        return declared


class _Placeholders:
    def __init__(self) -> None:
        self.values: list[BoundValue] = []

    def add(self, value: str, kind: str, label: str) -> exp.Expression:
        name = f"p{len(self.values) + 1}"
        self.values.append(BoundValue(name, PARAM_TYPES[kind], label, value))
        return exp.Placeholder(this=name)


def compile_document(doc: BuilderDocument, schema: BuilderSchema) -> CompiledReport:
    aliases = {name: schema.tables[name].alias for name in doc.tables}

    def column(ref: ColumnRef | tuple[str, str]) -> exp.Column:
        table, name = (ref.table, ref.column) if isinstance(ref, ColumnRef) else ref
        return exp.column(name, table=aliases[table], quoted=True)

    def table(name: str) -> exp.Table:
        return table_expression(name, aliases[name])

    keys = _result_keys(doc.columns)
    projections = [
        _projection(column(c.ref), c.aggregate).as_(key, quoted=True)
        for c, key in zip(doc.columns, keys, strict=True)
    ]
    query = exp.select(*projections).from_(table(doc.base))
    for join in doc.joins:
        relation = schema.relation(join.relation)
        assert relation is not None  # parse_document checked it
        on = exp.EQ(
            this=column((relation.child, relation.column)),
            expression=column((relation.parent, "id")),
        )
        kind = "left" if join.keep_unmatched else ""
        query = query.join(table(join.table), on=on, join_type=kind)
    placeholders = _Placeholders()
    conditions = [_condition(f, column(f.ref), placeholders) for f in doc.filters]
    if conditions:
        query = query.where(exp.and_(*conditions))
    if doc.grouped:
        grouping = [column(c.ref) for c in doc.columns if c.aggregate is None]
        if grouping:
            query = query.group_by(*grouping)
    if doc.sort:
        # by the column's expression, not its alias: sqlglot sorts NULLs last in MySQL with a
        # CASE over the sort key, and PostgreSQL takes no output alias inside an expression
        sorted_by = [doc.columns[s.column] for s in doc.sort]
        query = query.order_by(*(
            exp.Ordered(this=_projection(column(c.ref), c.aggregate), desc=s.descending)
            for c, s in zip(sorted_by, doc.sort, strict=True)
        ))  # fmt: skip
    query = query.limit(exp.Literal.number(doc.limit))
    columns = tuple(
        ResultColumn(key, c.label, c.type) for c, key in zip(doc.columns, keys, strict=True)
    )
    sql = query.sql(dialect="mysql", pretty=True)
    return CompiledReport(sql, tuple(placeholders.values), columns, doc.company_safe)


def table_expression(name: str, alias: str) -> exp.Table:
    """`prefix_<name>` AS alias: the validator resolves `prefix_` to the site's prefix."""
    return exp.Table(
        this=exp.to_identifier(f"prefix_{name}", quoted=True),
        alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
    )


def compile_checked(
    doc: BuilderDocument, schema: BuilderSchema, prefix: str = "mdl_"
) -> tuple[CompiledReport, CheckedQuery]:
    """The compiled report and the validator's verdict on its SQL (QueryRejected if refused:
    a builder bug, since every name comes from the whitelist)."""
    from common.customsql.validator import validate

    compiled = compile_document(doc, schema)
    return compiled, validate(compiled.sql, prefix)


def _result_keys(columns: tuple[OutputColumn, ...]) -> list[str]:
    """Each result column's name: its label (letters, digits and spaces only), made unique —
    what the report's table, exports, CLI and API show as its heading."""
    keys: list[str] = []
    for c in columns:
        name = " ".join(_UNSAFE.sub(" ", c.label).split())[:MAX_NAME_CHARS] or c.ref.column
        candidate, n = name, 2
        while candidate.lower() in {k.lower() for k in keys}:
            candidate, n = f"{name} {n}", n + 1
        keys.append(candidate)
    return keys


def _projection(col: exp.Column, aggregate: str | None) -> exp.Expression:
    if aggregate is None:
        return col
    if aggregate == "count":
        return exp.Count(this=col)
    if aggregate == "count_distinct":
        return exp.Count(this=exp.Distinct(expressions=[col]))
    functions: dict[str, Any] = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}
    return functions[aggregate](this=col)  # type: ignore[no-any-return]


def _number(n: int) -> exp.Expression:
    return exp.Literal.number(n)


def _empty(col: exp.Column, kind: ColumnType) -> _Sql:
    nothing: _Sql = exp.Is(this=col.copy(), expression=exp.Null())
    if kind == "text":
        return exp.or_(nothing, exp.EQ(this=col.copy(), expression=exp.Literal.string("")))
    if kind == "datetime":  # Moodle writes 0 for "never"
        return exp.or_(nothing, exp.EQ(this=col.copy(), expression=_number(0)))
    return nothing


def _condition(f: Filter, col: exp.Column, ph: _Placeholders) -> _Sql:
    label = f"{f.ref.label} {OPERATORS[f.op][0]}"
    kind = f.ref.type
    value_kind = kind if kind in ("text", "int", "number") else "text"

    def named(i: int) -> str:
        if f.op in ("between", "date_between"):
            return f"{label} ({'from' if i == 0 else 'to'})"
        return f"{label} ({i + 1})" if len(f.values) > 1 else label

    def one(i: int = 0, as_kind: str | None = None) -> exp.Expression:
        return ph.add(f.values[i], as_kind or value_kind, named(i))

    def day_start(i: int) -> exp.Expression:
        return ph.add(f.values[i], "date", named(i))

    op = f.op
    if op == "eq":
        return exp.EQ(this=col, expression=one())
    if op == "ne":
        return exp.NEQ(this=col, expression=one())
    if op == "lt":
        return exp.LT(this=col, expression=one())
    if op == "gt":
        return exp.GT(this=col, expression=one())
    if op == "between":
        return exp.Between(this=col, low=one(0), high=one(1))
    if op == "in":
        return exp.In(this=col, expressions=[one(i) for i in range(len(f.values))])
    if op in ("contains", "starts_with"):
        # The value is found as a string, not a LIKE pattern: its % and _ are literal.
        position = exp.StrPosition(this=exp.Lower(this=col), substr=exp.Lower(this=one()))
        if op == "contains":
            return exp.GT(this=position, expression=_number(0))
        return exp.EQ(this=position, expression=_number(1))
    if op == "is_empty":
        return exp.Paren(this=_empty(col, kind))
    if op == "not_empty":
        return exp.Not(this=exp.Paren(this=_empty(col, kind)))
    if op == "viewer_company":
        return exp.EQ(this=col, expression=exp.Placeholder(this=COMPANY_PLACEHOLDER))
    if op == "is_true":
        return exp.NEQ(this=col, expression=_number(0))
    if op == "is_false":
        return exp.Paren(this=exp.or_(exp.EQ(this=col.copy(), expression=_number(0)),
                                      exp.Is(this=col.copy(), expression=exp.Null())))  # fmt: skip
    set_ = exp.GT(this=col.copy(), expression=_number(0))  # 0 is "never", not a date
    if op == "before":
        return exp.and_(set_, exp.LT(this=col, expression=day_start(0)))
    if op == "after":
        after = exp.Add(this=day_start(0), expression=_number(DAY_S))
        return exp.GTE(this=col, expression=after)
    if op == "date_between":
        low = exp.GTE(this=col.copy(), expression=day_start(0))
        high = exp.LT(this=col, expression=exp.Add(this=day_start(1), expression=_number(DAY_S)))
        return exp.and_(set_, low, high)
    if op == "in_last_days":
        # a 64-bit product: 36,500 days of seconds overflow PostgreSQL's 32-bit integers
        wide = exp.Cast(this=one(0, "days"), to=exp.DataType.build("BIGINT"))
        days = exp.Mul(this=wide, expression=_number(DAY_S))
        now = exp.Anonymous(this="UNIX_TIMESTAMP")
        return exp.GTE(this=col, expression=exp.Sub(this=now, expression=days))
    raise ValueError(f"operator {op} has no SQL")  # parse_document allows only known ones
