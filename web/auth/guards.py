"""Per-request access: who is signed in, what they may do, and what of which company they see.

Every view declares its tenancy with one decorator — `signed_in(*capabilities, tenancy=...)`
for pages and AJAX calls, `open_to(tenancy)` for the few that need no sign-in — and the route
walker test fails for a view without one. Inside a signed-in view, `current_viewer()` is the
viewer and `request_scope()` the `TenantScope` its tenancy calls for, decided once by
`common.tenancy.scope_for`; a company outside it raises `TenantViolation`, which the app's one
error handler turns into an audited 403.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import select

from common.access.viewer import Viewer, load_viewer
from common.audit import OUTCOME_DENIED, record_audit
from common.errors import FieldError
from common.ids import parse_id
from common.tenancy import (
    MANAGE,
    VIEW,
    TenantScope,
    TenantViolation,
    default_company,
    require_company,
    scope_for,
    sees_every_company,
)

F = TypeVar("F", bound=Callable[..., Any])
SESSION_COMPANY = "company_id"


class Tenancy(StrEnum):
    """What a view reads or changes, for the route walker and for `request_scope()`."""

    PUBLIC = "public"  # nothing of anyone's: sign-in page, health, static files
    SELF = "self"  # only the viewer's own things (their sessions, their tokens)
    VIEW = "view"  # a company's figures, as scope_for(viewer, company, VIEW) allows
    MANAGE = "manage"  # acts on a company: scope_for(viewer, company, MANAGE)
    SITE = "site"  # site-wide settings: site admins only
    TOKEN = "token"  # the JSON API: a bearer token's user and company (web/api/auth.py)
    SIGNED = "signed"  # machine calls proven by a signature or a heartbeat token


def web_context():  # type: ignore[no-untyped-def]
    return current_app.extensions["manireports"]


def optional_viewer() -> Viewer | None:
    """The signed-in viewer, or None (for pages that show either way, such as the menu)."""
    if "viewer" not in g:
        from web.auth.sessions import revoke_user_sessions, session_user_id

        user_id = session_user_id()  # a live server-side session, or None
        viewer = None
        if user_id is not None:
            ctx = web_context()
            with ctx.appdb.transaction() as db:
                viewer = load_viewer(ctx.moodle, db, user_id)
            if viewer is None:  # suspended or deleted since signing in: end every session
                revoke_user_sessions(user_id, actor_id=None, reason="suspended or deleted")
                session.clear()
        g.viewer = viewer
    return g.viewer  # type: ignore[no-any-return]


def current_viewer() -> Viewer:
    """The viewer of a `signed_in` view (never None there)."""
    viewer = optional_viewer()
    if viewer is None:
        raise RuntimeError("current_viewer() is for views wrapped in @signed_in")
    return viewer


def audit_denial(viewer: Viewer | None, what: str, company_id: int | None = None) -> None:
    ctx = web_context()
    with ctx.appdb.transaction() as db:
        record_audit(
            db,
            actor_id=viewer.user_id if viewer else None,
            action="access_denied",
            object_type="endpoint",
            object_id=f"{request.method} {request.path}"[:255],
            outcome=OUTCOME_DENIED,
            company_id=company_id,
            ip=request.remote_addr,
            details={"reason": what},
        )


def _declare(view: Callable[..., Any], tenancy: Tenancy) -> None:
    view.tenancy = tenancy  # type: ignore[attr-defined]


def open_to(tenancy: Tenancy) -> Callable[[F], F]:
    """A view that needs no sign-in (PUBLIC, or SIGNED machine calls that prove themselves)."""
    if tenancy not in (Tenancy.PUBLIC, Tenancy.SIGNED, Tenancy.TOKEN):
        raise ValueError(f"{tenancy} views need @signed_in")

    def decorate(view: F) -> F:
        _declare(view, tenancy)
        return view

    return decorate


def signed_in(*capabilities: str, tenancy: Tenancy) -> Callable[[F], F]:
    """Signed in, holding at least one of ``capabilities`` (none given: signed in only), and
    — for SITE views — a site admin. Refusals are 403 and audited."""
    if tenancy in (Tenancy.PUBLIC, Tenancy.SIGNED, Tenancy.TOKEN):
        raise ValueError(f"{tenancy} views use @open_to")

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            viewer = optional_viewer()
            if viewer is None:
                if request.accept_mimetypes.best == "application/json" or request.is_json:
                    abort(401, description="Sign in first.")
                return redirect(url_for("auth.login", next=request.full_path))
            if capabilities and not viewer.can_any(capabilities):
                raise TenantViolation(None, f"You need the capability {' or '.join(capabilities)}.")
            if tenancy is Tenancy.SITE and not viewer.is_site_admin:
                raise TenantViolation(None, "Only site administrators may do this.")
            g.tenancy = tenancy
            return view(*args, **kwargs)

        guarded.required_capabilities = capabilities  # type: ignore[attr-defined]
        _declare(guarded, tenancy)
        return guarded  # type: ignore[return-value]

    return decorate


def requested_company_id() -> int | None:
    """The company asked for: `?company=`, else the one chosen in the header's switcher for
    this session. 0 is the site itself (site-wide templates and rules).

    Only the query string counts, never a posted form: a form's own `company` field (a token's
    restriction, a dashboard's company) is that form's data, not the company the page works
    on — read as one it made the header's switcher show that company after the POST. Forms
    that work on a company carry it in their action's URL."""
    raw = request.args.get("company")
    if raw is None or raw == "":
        raw = session.get(SESSION_COMPANY)
    if raw is None or raw == "":
        return None
    return parse_id(str(raw), "company", minimum=0)


def request_scope() -> TenantScope:
    """The tenant scope of this request, for the tenancy its view declared."""
    if "scope" not in g:
        tenancy = g.get("tenancy")
        viewer = current_viewer()
        if tenancy in (Tenancy.VIEW, Tenancy.MANAGE):
            action = MANAGE if tenancy is Tenancy.MANAGE else VIEW
            company_id = requested_company_id()
            g.scope = scope_for(viewer, company_id, action)
            if sees_every_company(viewer):  # anyone else's companies come from Moodle itself
                require_company(web_context().moodle, company_id)
        elif tenancy is Tenancy.SELF:
            g.scope = TenantScope(company_ids=None, user_ids=frozenset({viewer.user_id}))
        elif tenancy is Tenancy.SITE:
            g.scope = TenantScope(company_ids=None)
        else:
            raise RuntimeError(f"request_scope() in a view of tenancy {tenancy!r}")
    return g.scope  # type: ignore[no-any-return]


def chosen_company_id() -> int:
    """The one company a MANAGE (or VIEW) view works on. Asked for none (a site admin on "All
    companies", a manager of several who never switched), the page works on the company the
    header's switcher shows for it — the first company of the site for a site admin, the
    viewer's own default otherwise — rather than refusing; 400 only when there is none."""
    scope = request_scope()
    if scope.company_id is not None:
        return scope.company_id
    viewer = current_viewer()
    fallback = fallback_company_id(viewer)
    if fallback is None:
        abort(400, description="company: there is no company to work on; choose one first")
    action = MANAGE if g.get("tenancy") is Tenancy.MANAGE else VIEW
    g.scope = scope_for(viewer, fallback, action)
    g.chosen_company = fallback
    return fallback


def fallback_company_id(viewer: Viewer) -> int | None:
    """The company a one-company page falls back to when none is asked for."""
    if not viewer.has_iomad:
        return None
    if viewer.is_site_admin:
        company = web_context().moodle.tables.company
        first = select(company.c.id).order_by(company.c.name, company.c.id).limit(1)
        with web_context().moodle.engine.connect() as conn:
            found = conn.scalar(first)
        return None if found is None else int(found)
    default = default_company(viewer)
    managed = viewer.managed_company_ids
    if g.get("tenancy") is Tenancy.MANAGE and managed and default not in managed:
        return managed[0]
    return default


def current_company_id(viewer: Viewer) -> int | None:
    """The company the header shows as chosen for this request: the one a one-company page
    fell back to, else `?company=` or the session's, else the viewer's default (None: a site
    admin on "All companies", or a site without IOMAD). Never raises: the header renders on
    error pages too."""
    if not viewer.has_iomad:
        return None
    chosen = g.get("chosen_company")
    if chosen is not None:
        return int(chosen)
    try:
        asked = requested_company_id()
    except FieldError:
        asked = None
    if asked is not None and asked != 0:
        if viewer.is_site_admin or viewer.membership(asked) is not None:
            return asked
    if viewer.is_site_admin:
        return None
    return default_company(viewer)
