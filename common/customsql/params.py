"""The `:name` parameters of a custom SQL report: declared with a type, parsed from raw text
(a form, the API, `--param name=value`) into values the driver binds — never written into
the SQL — and described as form inputs.

Types: text, int, date (YYYY-MM-DD, bound as the Unix time that day starts, as Moodle stores
times), course and company (ids, offered as dropdowns of what the viewer may see). A report run
for one company (`bound_company`) has every company parameter, `:companyid` first of all, fixed
to that company: a different value is refused, never silently replaced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Protocol

from sqlalchemy import Select, select

from common.errors import FieldError, raise_all
from common.ids import parse_id
from common.moodle import MoodleSource
from common.tenancy import TenantScope, scoped

PARAM_TYPES = ("text", "int", "date", "course", "company")
COMPANY_PARAM = "companyid"
TEXT_MAX = 1000
LABEL_MAX = 100
OPTIONS_MAX = 1000  # a dropdown longer than this is no use
SITE_COURSE_ID = 1  # Moodle's front page, not a course anyone takes
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_INT = re.compile(r"-?[0-9]{1,19}")


class _Checked(Protocol):
    """What this module needs of `common.customsql.validator.CheckedQuery`."""

    @property
    def params(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class QueryParam:
    """One declared `:name` placeholder. ``default`` is raw text, parsed like a typed value."""

    name: str
    type: str
    label: str
    required: bool = True
    default: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "label": self.label,
                "required": self.required, "default": self.default}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueryParam:
        """A declaration as stored or submitted; anything malformed is a FieldError on
        `params` naming the parameter and what is wrong."""
        if not isinstance(data, Mapping):
            raise FieldError("params", "each parameter must be an object")
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise FieldError("params", f"{str(name)[:40]!r} is not a parameter name")
        kind = data.get("type", "text")
        if kind not in PARAM_TYPES:
            raise FieldError(
                "params", f"{name}: type {str(kind)[:20]!r} is not one of {', '.join(PARAM_TYPES)}"
            )
        label = data.get("label") or default_label(name)
        if not isinstance(label, str) or len(label) > LABEL_MAX:
            raise FieldError("params", f"{name}: the label must be text of at most {LABEL_MAX}")
        required = data.get("required", True)
        if not isinstance(required, bool):
            raise FieldError("params", f"{name}: 'required' must be true or false")
        default = data.get("default")
        if default is not None and not isinstance(default, str):
            default = str(default) if isinstance(default, int) else None
            if default is None:
                raise FieldError("params", f"{name}: the default must be text")
        param = cls(name, kind, label, required, default or None)
        if param.default is not None:
            _parse_one(param, param.default)  # a default that could never run is a mistake now
        return param


def default_label(name: str) -> str:
    """`course_id` → "Course id"; `companyid` → "Company"."""
    if name == COMPANY_PARAM:
        return "Company"
    words = name.strip("_").replace("_", " ")
    return (words[:1].upper() + words[1:]) or name


def declare_params(checked: _Checked, stored: Sequence[QueryParam]) -> list[QueryParam]:
    """Every placeholder of the query declared once, in order of first use: its stored
    declaration, or text (`companyid`: company). Declarations of names the SQL no longer uses
    are dropped; a name declared twice, or `companyid` as anything but a company, is refused."""
    by_name: dict[str, QueryParam] = {}
    for param in stored:
        if param.name in by_name:
            raise FieldError("params", f"{param.name} is declared twice")
        if param.name == COMPANY_PARAM and param.type != "company":
            raise FieldError("params", f"{COMPANY_PARAM} is always a company parameter")
        by_name[param.name] = param
    declared = []
    for name in checked.params:
        found = by_name.get(name)
        if found is None:
            kind = "company" if name == COMPANY_PARAM else "text"
            found = QueryParam(name, kind, default_label(name))
        declared.append(found)
    return declared


def parse_param_values(
    declared: Sequence[QueryParam],
    raw: Mapping[str, str],
    *,
    bound_company: int | None,
    zone: tzinfo = UTC,
) -> dict[str, Any]:
    """Typed values to bind, one per declared parameter (None binds NULL for an optional one
    left empty). Every bad value is reported, each a FieldError naming its parameter. Raw keys
    that are not parameters are ignored (a form carries others)."""
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    if bound_company is not None and not any(p.name == COMPANY_PARAM for p in declared):
        raise FieldError(
            COMPANY_PARAM, f"a report run for one company must use the :{COMPANY_PARAM} parameter"
        )
    for param in declared:
        text = (raw.get(param.name) or "").strip()
        try:
            if param.type == "company" and bound_company is not None:
                values[param.name] = _bound(param, text, bound_company)
                continue
            if not text:
                text = param.default or ""
            if not text:
                if param.required:
                    raise FieldError(param.name, f"{param.label} is required")
                values[param.name] = None
                continue
            values[param.name] = _parse_one(param, text, zone)
        except FieldError as exc:
            errors.append(exc)
    raise_all(errors)
    return values


def _bound(param: QueryParam, text: str, company: int) -> int:
    if text and text != str(company):
        raise FieldError(
            param.name,
            f"{param.label} is fixed to your company ({company}) and cannot be changed",
            status=403,
        )
    return company


def _parse_one(param: QueryParam, text: str, zone: tzinfo = UTC) -> Any:
    if param.type == "int":
        if not _INT.fullmatch(text) or not INT_MIN <= int(text) <= INT_MAX:
            raise FieldError(param.name, f"{text[:40]!r} is not a whole number")
        return int(text)
    if param.type == "date":
        try:
            if len(text) != 10:
                raise ValueError
            day = date.fromisoformat(text)
        except ValueError:
            raise FieldError(param.name, f"{text[:40]!r} is not a date (YYYY-MM-DD)") from None
        return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
    if param.type in ("course", "company"):
        try:
            return parse_id(text, param.name)
        except FieldError as exc:
            raise FieldError(param.name, f"{text[:40]!r}: {exc.reason}") from None
    if len(text) > TEXT_MAX:
        raise FieldError(param.name, f"at most {TEXT_MAX} characters")
    if "\x00" in text:  # SQLite's LIKE would read only up to it
        raise FieldError(param.name, "may not contain a NUL character")
    return text


@dataclass(frozen=True)
class FormInput:
    """What a template needs to draw one parameter: `input` is text | number | date | select;
    a select has (value, label) `options`; `fixed` means shown but not changeable (the
    company of a company manager)."""

    name: str
    label: str
    input: str
    value: str
    required: bool
    options: tuple[tuple[str, str], ...] = field(default=())
    fixed: bool = False


_INPUTS = {"text": "text", "int": "number", "date": "date", "course": "select",
           "company": "select"}  # fmt: skip


def form_inputs(
    declared: Sequence[QueryParam],
    raw: Mapping[str, str],
    *,
    source: MoodleSource,
    scope: TenantScope,
    bound_company: int | None,
) -> list[FormInput]:
    """One input per parameter, holding what was typed (kept on errors) or the default.
    Course and company dropdowns list only what ``scope`` may see, by name."""
    inputs = []
    for param in declared:
        value = raw.get(param.name)
        value = (param.default or "") if value is None else value
        fixed = param.type == "company" and bound_company is not None
        if fixed:
            value = str(bound_company)
        options: tuple[tuple[str, str], ...] = ()
        if param.type in ("course", "company"):
            found = param_options(param, source, scope)
            if fixed:
                found = [(v, label) for v, label in found if v == value] or [(value, f"#{value}")]
            elif value and value not in {v for v, _ in found}:
                found.append((value, f"{param.label} #{value}"))  # asked for, not visible
            blank = [] if fixed else [("", "Choose…" if param.required else "Any")]
            options = tuple(blank + found)
        inputs.append(FormInput(param.name, param.label, _INPUTS[param.type], value,
                                param.required, options, fixed))  # fmt: skip
    return inputs


def param_options(
    param: QueryParam, source: MoodleSource, scope: TenantScope
) -> list[tuple[str, str]]:
    """(id, name) choices of a course or company parameter, read through the tenant scope:
    a company manager sees their company's courses (and the shared ones), never another's."""
    query = _choices(param, source)
    if query is None:
        return []
    with source.engine.connect() as conn:
        rows = conn.execute(scoped(query.limit(OPTIONS_MAX), scope, source)).all()
    return [(str(int(row[0])), str(row[1])) for row in rows]


def _choices(param: QueryParam, source: MoodleSource) -> Select[Any] | None:
    t = source.tables
    if param.type == "course":
        course = t.course
        return (
            select(course.c.id, course.c.fullname)
            .where(course.c.id != SITE_COURSE_ID)
            .order_by(course.c.fullname, course.c.id)
        )
    if param.type == "company" and source.features().has_iomad:
        company = t.company
        return select(company.c.id, company.c.name).order_by(company.c.name, company.c.id)
    return None


def check_in_scope(
    declared: Sequence[QueryParam],
    values: Mapping[str, Any],
    *,
    source: MoodleSource,
    scope: TenantScope,
) -> None:
    """Refuse a course or company value the viewer could not have picked from its dropdown
    (one outside their scope), naming the parameter. A site-wide scope passes unchecked."""
    if scope.unrestricted:
        return
    errors = []
    for param in declared:
        value = values.get(param.name)
        query = _choices(param, source) if value is not None else None
        if query is None:
            continue
        id_column = query.selected_columns[0]
        with source.engine.connect() as conn:
            found = conn.scalar(scoped(query.where(id_column == value), scope, source))
        if found is None:
            reason = f"{param.label} {value} is not one you may choose"
            errors.append(FieldError(param.name, reason, status=403))
    raise_all(errors)
