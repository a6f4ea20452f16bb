"""The audit log viewer for administrators, filtered by user, date range and action."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, render_template, request

from common.access import capabilities as caps
from common.audit import audit_actions, search_audit
from common.errors import FieldError
from common.ids import parse_optional_id, parse_page
from web.auth.guards import Tenancy, request_scope, signed_in, web_context

bp = Blueprint("audit", __name__, url_prefix="/admin/audit", template_folder="templates")
PAGE_SIZE = 100
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
    page = parse_page(request.args.get("page"))
    action = request.args.get("action", "")[:MAX_ACTION_CHARS] or None
    since = datetime.combine(date_from, time.min, UTC) if date_from else None
    # "to" is inclusive for the person filtering: everything before the next midnight.
    until = None
    if date_to is not None and date_to < date.max:
        until = datetime.combine(date_to + timedelta(days=1), time.min, UTC)
    ctx = web_context()
    with ctx.appdb.transaction() as db:
        entries = search_audit(
            db,
            request_scope(),
            user_id=parse_optional_id(request.args.get("user"), "user"),
            action=action,
            since=since,
            until=until,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        actions = audit_actions(db)
    return render_template(
        "audit/index.html", entries=entries, actions=actions, page=page, page_size=PAGE_SIZE
    )
