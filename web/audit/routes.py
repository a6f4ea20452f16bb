"""The audit log viewer for administrators, filtered by user, date range and action, paged
and sorted by the database, with people named as Moodle names them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, render_template, request

from common.access import capabilities as caps
from common.analytics.tables import PAGE_SIZES, TablePage
from common.audit import AUDIT_TABLE, audit_actions, audit_query
from common.errors import FieldError
from common.ids import parse_optional_id
from common.moodle.names import display_names
from common.reports.rows import SqlRows
from web.auth.guards import Tenancy, request_scope, signed_in, web_context

bp = Blueprint("audit", __name__, url_prefix="/admin/audit", template_folder="templates")
MAX_ACTION_CHARS = 64


def _date_arg(name: str) -> date | None:
    raw = request.args.get(name, "")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise FieldError(name, f"{raw[:40]!r} is not a date (YYYY-MM-DD)", status=400) from None


@bp.get("/")
@signed_in(caps.VIEW_AUDIT_LOG, tenancy=Tenancy.VIEW)
def index():  # type: ignore[no-untyped-def]
    date_from, date_to = _date_arg("from"), _date_arg("to")
    request_ = AUDIT_TABLE.page_request(request.args)
    action = request.args.get("action", "")[:MAX_ACTION_CHARS] or None
    user_id = parse_optional_id(request.args.get("user"), "user")
    since = datetime.combine(date_from, time.min, UTC) if date_from else None
    # "to" is inclusive for the person filtering: everything before the next midnight.
    until = None
    if date_to is not None and date_to < date.max:
        until = datetime.combine(date_to + timedelta(days=1), time.min, UTC)
    ctx = web_context()
    query = audit_query(request_scope(), user_id=user_id, action=action, since=since, until=until)
    found, total = SqlRows(ctx.appdb.engine, query).page(request_, AUDIT_TABLE.row_key)
    with ctx.appdb.transaction() as db:
        actions = audit_actions(db)
    wanted = {r["userid"] for r in found if r["userid"]} | ({user_id} if user_id else set())
    people, _ = display_names(ctx.moodle, wanted, set())
    return render_template(
        "audit/index.html", table=TablePage(AUDIT_TABLE, found, total, request_),
        actions=actions, people=people, user_id=user_id, page_sizes=PAGE_SIZES,
    )  # fmt: skip
