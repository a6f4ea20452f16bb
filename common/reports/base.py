"""The report registry and the shapes every report shares.

A report is a class with a `type_name`, the capabilities that may run it, a parameter parser
that validates raw strings (from a query string, a form, the CLI or a schedule) and a `run`
that reads the Moodle DB through a `TenantScope`. Adding a report is adding one module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from common.errors import FieldError
from common.moodle import MoodleSource, SiteFeatures
from common.tenancy import TenantScope
from common.timezones import utc_offset_s


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text | int | percent | date


@dataclass
class ReportResult:
    columns: list[Column]
    rows: list[dict[str, Any]]
    chart: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in self.columns],
            "rows": self.rows,
            "chart": self.chart,
            "params": self.params,
        }

    def table(self) -> list[list[Any]]:
        """Header then rows, in column order: exactly what a table on screen shows."""
        return [[c.label for c in self.columns]] + [
            [row.get(c.key) for c in self.columns] for row in self.rows
        ]


class Report(ABC):
    type_name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[tuple[str, ...]]

    def enabled(self, features: SiteFeatures) -> bool:
        return True

    @abstractmethod
    def parse_params(self, raw: Mapping[str, str]) -> dict[str, Any]:
        """Validate raw string parameters; raise FieldError (status 400) naming the field."""

    @abstractmethod
    def run(
        self,
        source: MoodleSource,
        scope: TenantScope,
        params: Mapping[str, Any],
        *,
        now: int,
        tz_offset_s: int = 0,
    ) -> ReportResult:
        """Read the figures, restricted to `scope`, as of Unix time `now`."""

    def run_for(
        self,
        source: MoodleSource,
        scope: TenantScope,
        params: Mapping[str, Any],
        *,
        now: int,
        timezone: str | None,
    ) -> ReportResult:
        """`run` with days counted in a viewer's Moodle timezone (user.timezone)."""
        return self.run(source, scope, params, now=now, tz_offset_s=utc_offset_s(timezone, now))


_REGISTRY: dict[str, Report] = {}


def register(report_class: type[Report]) -> type[Report]:
    _REGISTRY[report_class.type_name] = report_class()
    return report_class


def get_report(type_name: str) -> Report | None:
    return _REGISTRY.get(type_name)


def registered_reports() -> list[Report]:
    return list(_REGISTRY.values())


def choice_param(raw: Mapping[str, str], name: str, choices: tuple[int, ...], default: int) -> int:
    value = raw.get(name)
    if value in (None, ""):
        return default
    if not str(value).isascii() or not str(value).isdigit() or len(str(value)) > 19:
        raise FieldError(name, f"{value!r} is not a number", status=400)
    number = int(value)
    if number not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise FieldError(name, f"must be one of {allowed}", status=400)
    return number
