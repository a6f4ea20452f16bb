"""The audit log viewer for administrators, filtered by user, date range and action, paged
and sorted by the database, with people and companies named.

The user filter takes a name (first, last or full name, username or email, matched only
among the people the viewer's scope may see) or, as links and old bookmarks do, an id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import Blueprint, render_template, request
from sqlalchemy import func, select

from common.access import capabilities as caps
from common.analytics.tables import PAGE_SIZES, TablePage
from common.audit import AUDIT_TABLE, audit_actions, audit_query
from common.errors import FieldError
from common.ids import parse_id
from common.models.access import AuditLog
from common.moodle.names import display_names
from common.moodle.people_search import MAX_QUERY_CHARS, Person, find_people, person_in_scope
from common.reports.rows import SqlRows
from web.auth.guards import Tenancy, current_viewer, request_scope, signed_in, web_context
from web.humanize import zone_named
from web.period import requested_period

bp = Blueprint("audit", __name__, url_prefix="/admin/audit", template_folder="templates")
MAX_ACTION_CHARS = 64
_ALL_DIGITS = re.compile(r"[0-9]+")


@dataclass
class UserFilter:
    """What the `user` box asked for and whom it found. `user_ids` None: no filter; empty:
    nobody matched (no entries)."""

    text: str = ""
    user_ids: list[int] | None = None
    matches: list[Person] = field(default_factory=list)
    by_id: int | None = None


def _user_filter() -> UserFilter:
    text = " ".join(request.args.get("user", "").split())
    if not text:
        return UserFilter()
    if _ALL_DIGITS.fullmatch(text):
        user_id = parse_id(text, "user")  # 0 or past 2^63: a 400 naming the field
        return UserFilter(text, [user_id], by_id=user_id)
    if len(text) > MAX_QUERY_CHARS:
        raise FieldError("user", f"at most {MAX_QUERY_CHARS} characters", status=400)
    matches = find_people(web_context().moodle, request_scope(), text)
    return UserFilter(text, [p.user_id for p in matches], matches)


def _companies_by_name() -> list[int]:
    """Every IOMAD company's id, in the order of its name (what the Company column sorts by);
    none on a plain Moodle, whose entries name no company."""
    source = web_context().moodle
    if not source.features().has_iomad:
        return []
    company = source.tables.company
    query = select(company.c.id).order_by(func.lower(company.c.name), company.c.id)
    with source.engine.connect() as conn:
        return [int(company_id) for company_id in conn.scalars(query)]


@bp.get("/")
@signed_in(caps.VIEW_AUDIT_LOG, tenancy=Tenancy.VIEW)
def index():  # type: ignore[no-untyped-def]
    request_ = AUDIT_TABLE.page_request(request.args)
    action = request.args.get("action", "")[:MAX_ACTION_CHARS] or None
    chosen = _user_filter()
    since, until = requested_period(zone_named(current_viewer().timezone))
    ctx, scope = web_context(), request_scope()
    query = audit_query(scope, action=action, since=since, until=until,
                        company_order=_companies_by_name())  # fmt: skip
    if chosen.user_ids is not None:
        query = query.where(AuditLog.userid.in_(chosen.user_ids))
    found, total = SqlRows(ctx.appdb.engine, query).page(request_, AUDIT_TABLE.row_key)
    with ctx.appdb.transaction() as db:
        actions = audit_actions(db)
    # The entries' actors are part of entries the viewer may read; the id typed in the box is
    # named only when the scope may see that person (else the box would tell who exists).
    people, _ = display_names(ctx.moodle, {r["userid"] for r in found if r["userid"]}, set())
    chosen_name = None
    if chosen.by_id is not None:
        person = person_in_scope(ctx.moodle, scope, chosen.by_id)
        chosen_name = person.name if person else people.get(chosen.by_id)
    return render_template(
        "audit/index.html", table=TablePage(AUDIT_TABLE, found, total, request_),
        actions=actions, people=people, chosen=chosen, chosen_name=chosen_name,
        page_sizes=PAGE_SIZES,
    )  # fmt: skip
