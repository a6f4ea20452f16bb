"""Report parameters: declared once, parsed the same from a query string, a form, the CLI
(`--param key=value`) and a saved schedule. A bad value is a FieldError (400) naming it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from common.errors import FieldError
from common.ids import parse_optional_id

SEARCH_MAX = 100


@dataclass(frozen=True)
class Param:
    name: str
    label: str
    kind: str  # choice | id | date | text
    parse_raw: Callable[[str, Param], Any]
    default: Any = None
    choices: tuple[Any, ...] = ()
    help: str = ""
    # How a person reads each choice (the filter bar, chips, PDF and XLSX headers).
    choice_labels: tuple[str, ...] = ()

    def choice_label(self, value: Any) -> str:
        if value in self.choices and len(self.choice_labels) == len(self.choices):
            return self.choice_labels[self.choices.index(value)]
        return str(value)

    def parse(self, raw: str | None) -> Any:
        if raw is None or str(raw).strip() == "":
            return self.default
        return self.parse_raw(str(raw).strip(), self)

    def as_json(self) -> dict[str, Any]:
        described: dict[str, Any] = {"name": self.name, "label": self.label, "type": self.kind,
                                     "default": self.default, "help": self.help}  # fmt: skip
        if self.choices:
            described["choices"] = list(self.choices)
        return described


def _choice(raw: str, param: Param) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) not in param.choices:
        allowed = ", ".join(str(c) for c in param.choices)
        raise FieldError(param.name, f"must be one of {allowed}", status=400)
    return int(raw)


def _id(raw: str, param: Param) -> int | None:
    try:
        return parse_optional_id(raw, param.name)
    except FieldError as exc:
        raise FieldError(param.name, exc.reason, status=400) from None


def _date(raw: str, param: Param) -> date:
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise FieldError(
            param.name, f"{raw[:40]!r} is not a date (YYYY-MM-DD)", status=400
        ) from None


def _text(raw: str, param: Param) -> str:
    if len(raw) > SEARCH_MAX:
        raise FieldError(param.name, f"at most {SEARCH_MAX} characters", status=400)
    # No stored name holds a NUL (PostgreSQL's text cannot, and would refuse the pattern);
    # dropped, the same search runs on every database.
    return raw.replace("\x00", "")


def choice(
    name: str,
    label: str,
    choices: tuple[int, ...],
    default: int,
    help: str = "",
    labels: tuple[str, ...] = (),
) -> Param:
    return Param(name, label, "choice", _choice, default, choices, help, labels)


def course_filter() -> Param:
    return Param("course", "Course", "id", _id, help="only this course (its id)")


def cohort_filter() -> Param:
    return Param("cohort", "Cohort", "id", _id, help="only members of this cohort (its id)")


def user_search() -> Param:
    return Param("q", "Learner", "text", _text,
                 help="learners whose name, username or email contains this")  # fmt: skip


def date_from() -> Param:
    return Param("from", "From", "date", _date, help="first day, YYYY-MM-DD (viewer's timezone)")


def date_to() -> Param:
    return Param("to", "To", "date", _date, help="last day, YYYY-MM-DD (viewer's timezone)")


def check_range(params: dict[str, Any]) -> None:
    """`from` after `to` is a mistake to name, not an empty report."""
    start, end = params.get("from"), params.get("to")
    if start is not None and end is not None and start > end:
        raise FieldError("to", "must not be before 'from'", status=400)
