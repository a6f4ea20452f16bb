"""What every page's header and templates share: the grouped menu, the company switcher, and
the helpers that name things (a company, a user, a course) and link them to their pages.

Registered on the app by the home blueprint (`bp.app_context_processor`,
`bp.app_template_global`), so every template — error pages too — gets them. Nothing here may
raise while a page renders: a header that fails would turn every error page into a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import g, request, url_for
from markupsafe import Markup, escape
from sqlalchemy import select

from common.access.viewer import Viewer
from common.moodle import MoodleSource
from common.tenancy import sees_every_company
from web.auth.guards import current_company_id, optional_viewer, web_context
from web.navigation import nav_groups

# A renamed or new company shows in the header within this many seconds.
COMPANY_NAMES_TTL_S = 30.0


@dataclass(frozen=True)
class Switcher:
    """The header's company picker: the companies on offer and the one chosen."""

    options: tuple[tuple[int, str], ...]
    current: int | None
    # Site admins may choose "All companies" (no company: every company's figures).
    allows_all: bool

    @property
    def current_name(self) -> str:
        return dict(self.options).get(self.current, "") if self.current else "All companies"


def company_names() -> dict[int, str]:
    """Every company of the site by id, by name (a site has tens of companies, not
    thousands): the header asks on every page, so it is remembered for COMPANY_NAMES_TTL_S."""
    if "company_names" not in g:
        source = web_context().moodle
        names: dict[int, str] = {}
        if source.features().has_iomad:
            names = source.remembered(("company_names",), COMPANY_NAMES_TTL_S,
                                      lambda: _read_company_names(source))  # fmt: skip
        g.company_names = names
    return g.company_names  # type: ignore[no-any-return]


def _read_company_names(source: MoodleSource) -> dict[int, str]:
    company = source.tables.company
    query = select(company.c.id, company.c.name).order_by(company.c.name, company.c.id)
    with source.engine.connect() as conn:
        return {int(r.id): str(r.name) for r in conn.execute(query)}


def switcher_for(viewer: Viewer) -> Switcher | None:
    """None when there is nothing to switch between (no IOMAD, or a single company: the
    header then just names it)."""
    if not viewer.has_iomad:
        return None
    names = company_names()
    if sees_every_company(viewer):
        options = tuple(names.items())
        allows_all = True
    else:
        options = tuple(sorted(((c, names.get(c, f"Company {c}")) for c in viewer.company_ids),
                               key=lambda option: option[1]))  # fmt: skip
        allows_all = False
    return Switcher(options, current_company_id(viewer), allows_all)


def company_name(company_id: int | None) -> str:
    """A company's name; the site itself for 0/None (site-wide settings)."""
    if not company_id:
        return "the whole site"
    return company_names().get(int(company_id), f"company #{int(company_id)}")


def _link(endpoint: str, key: str, object_id: Any, name: Any, fallback: str) -> Markup:
    if object_id is None or object_id == "":
        return escape(name or "")
    label = name if name not in (None, "") else f"{fallback} #{object_id}"
    values: dict[str, Any] = {key: int(object_id)}
    href = url_for(endpoint, **values)
    return Markup('<a href="{}">{}</a>').format(href, label)


def user_link(user_id: Any, name: Any = None) -> Markup:
    """A person's name linked to their page (/users/<id>)."""
    return _link("people.user", "user_id", user_id, name, "user")


def course_link(course_id: Any, name: Any = None) -> Markup:
    """A course's name linked to its page (/courses/<id>)."""
    return _link("people.course", "course_id", course_id, name, "course")


def header_context() -> dict[str, Any]:
    try:
        viewer = optional_viewer()
    except Exception:  # noqa: BLE001  the header of an error page must still render
        viewer = None
    if viewer is None:
        return {"nav_groups": [], "switcher": None, "current_company_name": ""}
    company = current_company_id(viewer)
    switcher = switcher_for(viewer)
    name = company_name(company) if company else ""
    return {
        "nav_groups": nav_groups(viewer, company),
        "switcher": switcher
        if switcher and (switcher.allows_all or len(switcher.options) > 1)
        else None,
        "current_company_name": name,
        "switch_next": request.full_path if request.query_string else request.path,
    }


def format_value(value: Any, kind: str = "text") -> str:
    """A report cell as the report table shows it (reportkit.js `format`), server-side."""
    if value is None or value == "":
        return ""
    if kind == "percent":
        return f"{float(value):.1f} %"
    if kind == "duration":
        minutes = round(float(value) / 60)
        return f"{minutes // 60}:{minutes % 60:02d}"
    if kind == "float":
        return f"{float(value):.1f}"
    if kind == "datetime" and hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M"))
    if kind == "date" and hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def cell(row: dict[str, Any], column: Any) -> Markup:
    """One report cell, a learner or course named by a link to its page when the row has
    the id (`user_id`, `course_id`)."""
    value = row.get(column.key)
    if column.key == "learner" and row.get("user_id") is not None:
        return user_link(row["user_id"], value)
    if column.key == "course" and row.get("course_id") is not None:
        return course_link(row["course_id"], value)
    return escape(format_value(value, column.kind))
