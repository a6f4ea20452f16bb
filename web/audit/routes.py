"""The audit log viewer for administrators, filtered by user, date range and action."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, abort, render_template, request

from common.access import capabilities as caps
from common.audit import audit_actions, search_audit
from web.auth.guards import require_capability, web_context

bp = Blueprint("audit", __name__, url_prefix="/admin/audit", template_folder="templates")
PAGE_SIZE = 100


def _date_arg(name: str) -> date | None:
    raw = request.args.get(name, "")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        abort(400, description=f"{name}: {raw!r} is not a date (YYYY-MM-DD)")


def _int_arg(name: str, default: int | None = None) -> int | None:
    raw = request.args.get(name, "")
    if not raw:
        return default
    if not raw.isdigit():
        abort(400, description=f"{name}: must be a whole number")
    return int(raw)


@bp.get("/")
@require_capability(caps.VIEW_AUDIT_LOG)
def index():  # type: ignore[no-untyped-def]
    date_from, date_to = _date_arg("from"), _date_arg("to")
    page = max(_int_arg("page", 1) or 1, 1)
    since = datetime.combine(date_from, time.min, UTC) if date_from else None
    # "to" is inclusive for the person filtering: everything before the next midnight.
    until = datetime.combine(date_to + timedelta(days=1), time.min, UTC) if date_to else None
    ctx = web_context()
    with ctx.appdb.transaction() as db:
        entries = search_audit(
            db,
            user_id=_int_arg("user"),
            action=request.args.get("action") or None,
            since=since,
            until=until,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        actions = audit_actions(db)
    return render_template(
        "audit/index.html", entries=entries, actions=actions, page=page, page_size=PAGE_SIZE
    )
