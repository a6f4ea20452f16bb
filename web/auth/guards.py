"""Per-request access: the signed-in viewer, capability checks and the tenant scope.

Every view but sign-in and the machine endpoints is wrapped in `require_capability`; a
denial answers 403 with a clear message and writes an audit entry.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app, g, redirect, request, session, url_for

from common.access.viewer import Viewer, load_viewer
from common.audit import OUTCOME_DENIED, record_audit
from common.tenancy import TenantScope, TenantViolation, scope_for

F = TypeVar("F", bound=Callable[..., Any])
SESSION_USER = "user_id"
SESSION_COMPANY = "company_id"


def web_context():  # type: ignore[no-untyped-def]
    return current_app.extensions["manireports"]


def current_viewer() -> Viewer | None:
    if "viewer" not in g:
        user_id = session.get(SESSION_USER)
        viewer = None
        if user_id is not None:
            ctx = web_context()
            with ctx.appdb.transaction() as db:
                viewer = load_viewer(ctx.moodle, db, int(user_id))
            if viewer is None:  # suspended or deleted since signing in
                session.clear()
        g.viewer = viewer
    return g.viewer  # type: ignore[no-any-return]


def audit_denial(viewer: Viewer | None, what: str, company_id: int | None = None) -> None:
    ctx = web_context()
    with ctx.appdb.transaction() as db:
        record_audit(
            db,
            actor_id=viewer.user_id if viewer else None,
            action="access_denied",
            object_type="endpoint",
            object_id=f"{request.method} {request.path}",
            outcome=OUTCOME_DENIED,
            company_id=company_id,
            ip=request.remote_addr,
            details={"reason": what},
        )


def deny(viewer: Viewer | None, message: str, company_id: int | None = None):  # type: ignore[no-untyped-def]
    audit_denial(viewer, message, company_id)
    abort(403, description=message)


def require_capability(*capabilities: str) -> Callable[[F], F]:
    """Signed in and holding at least one of `capabilities` (none given: signed in only)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            viewer = current_viewer()
            if viewer is None:
                if request.accept_mimetypes.best == "application/json" or request.is_json:
                    abort(401, description="Sign in first.")
                return redirect(url_for("auth.login", next=request.full_path))
            if capabilities and not viewer.can_any(capabilities):
                deny(viewer, f"You need the capability {' or '.join(capabilities)}.")
            return view(*args, **kwargs)

        guarded.required_capabilities = capabilities  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def requested_company_id() -> int | None:
    raw = request.args.get("company") or session.get(SESSION_COMPANY)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        abort(400, description="company must be a company id")


def viewer_scope() -> TenantScope:
    """The tenant scope of this request; another company's id answers 403 (audited)."""
    viewer = current_viewer()
    assert viewer is not None, "viewer_scope() needs require_capability on the view"
    company_id = requested_company_id()
    try:
        return scope_for(viewer, company_id)
    except TenantViolation as exc:
        deny(viewer, str(exc), company_id=exc.company_id)
        raise  # unreachable: deny aborts
