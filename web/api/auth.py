"""Who is calling the API: the bearer token, the Moodle user it acts as, scopes and tenancy.

Two kinds of bearer token are accepted: ManiReports' own (`mrt_…`, common/access/api_tokens.py)
and, for reading, Moodle web-service tokens (common/access/moodle_tokens.py). Either way the
token's user is loaded with `load_viewer` on every request, so a Moodle role change (or a
suspension) applies to their tokens at once, and each token is held to the per-minute request
limit (web/api/rate_limit.py). Failed authentication and every refusal are audited; a missing
header is not, since it is no attempt to authenticate.

A token in the URL (`?wstoken=`, as Moodle's REST server takes it, or `?access_token=`) is
refused with 400: URLs are written to access logs, proxies and browser history, so a token
sent there is as good as published. Audit lines name the path without its query string, and
a token only by its prefix (`mrt_abcd`) or its Moodle row id, never by its value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from common.access.api_tokens import SCOPE_REPORTS_READ, TOKEN_PREFIX, check, granted_scopes
from common.access.attempt_counters import AttemptCounters
from common.access.moodle_tokens import MoodleToken, check_moodle_token
from common.access.viewer import Viewer, load_viewer
from common.audit import OUTCOME_FAILED, record_audit
from common.ids import parse_optional_id
from common.models.api import ApiToken
from common.tenancy import (
    VIEW,
    Action,
    TenantScope,
    TenantViolation,
    require_company,
    scope_for,
    sees_every_company,
)
from web.api.errors import ApiError
from web.api.rate_limit import limiter
from web.auth.guards import Tenancy, audit_denial, web_context

F = TypeVar("F", bound=Callable[..., Any])
REALM = 'Bearer realm="ManiReports"'
# A Moodle token reads: it never creates email jobs, whatever its user may do in the UI.
MOODLE_TOKEN_SCOPES = frozenset({SCOPE_REPORTS_READ})
URL_TOKEN_PARAMS = ("wstoken", "access_token")


@dataclass(frozen=True)
class ApiCaller:
    token: ApiToken | MoodleToken
    viewer: Viewer
    scopes: frozenset[str]

    @property
    def rate_bucket(self) -> str:
        kind = "moodle" if isinstance(self.token, MoodleToken) else "token"
        return f"{kind}:{self.token.id}"


def api_caller() -> ApiCaller:
    caller: ApiCaller = g.api_caller
    return caller


def _unauthorized(message: str, *, presented: bool) -> ApiError:
    # RFC 6750 §3: a request with no credentials gets the bare challenge, a bad token the error.
    challenge = REALM + (f', error="invalid_token", error_description="{message}"'
                         if presented else "")  # fmt: skip
    return ApiError(401, message, headers={"WWW-Authenticate": challenge})


def _audit_failed_authentication(reason: str, user_id: int | None = None) -> None:
    with web_context().appdb.transaction() as session:
        record_audit(
            session, actor_id=user_id, action="api_auth_failed", object_type="endpoint",
            object_id=f"{request.method} {request.path}", outcome=OUTCOME_FAILED,
            ip=request.remote_addr, details={"reason": reason},
        )  # fmt: skip


def _presented_token() -> str:
    """The bearer token of the Authorization header; 401 (audited) when it is malformed."""
    for name in URL_TOKEN_PARAMS:
        if name in request.args:
            _audit_failed_authentication(f"token sent in the URL (?{name}=)")
            message = "send the token in the header Authorization: Bearer <token>, not the URL"
            raise ApiError(400, message, name, headers={
                "WWW-Authenticate": f'{REALM}, error="invalid_request", '
                                    f'error_description="{message}"'})  # fmt: skip
    header = request.headers.get("Authorization", "")
    if not header:
        raise _unauthorized("send the header Authorization: Bearer <token>", presented=False)
    kind, _, presented = header.partition(" ")
    if kind.lower() != "bearer" or not presented.strip():
        _audit_failed_authentication("malformed Authorization header")
        raise _unauthorized("the Authorization header must be 'Bearer <token>'", presented=True)
    return presented.strip()


def _authenticate() -> ApiCaller:
    presented = _presented_token()
    if not presented.startswith(TOKEN_PREFIX):
        return _authenticate_moodle(presented)
    ctx = web_context()
    with ctx.appdb.transaction() as session:
        # Expiry is wall-clock time (check's default); ctx.clock only dates report ranges.
        outcome = check(session, presented)
        token = outcome.token
        viewer = load_viewer(ctx.moodle, session, token.userid) if token else None
    if token is None:
        _audit_failed_authentication(outcome.refusal or "refused")
        raise _unauthorized("invalid, revoked or expired token", presented=True)
    if viewer is None:
        _audit_failed_authentication(f"token {token.prefix}: user cannot sign in", token.userid)
        raise _unauthorized("the token's user can no longer sign in", presented=True)
    return ApiCaller(token=token, viewer=viewer, scopes=granted_scopes(token))


def _authenticate_moodle(presented: str) -> ApiCaller:
    """A Moodle web-service token, checked as Moodle checks it (wall-clock time, the caller's
    address); the Moodle DB is only read: its `lastaccess` is not updated."""
    ctx = web_context()
    outcome = check_moodle_token(ctx.moodle, presented, request.remote_addr)
    token = outcome.token
    if token is None:
        _audit_failed_authentication(outcome.refusal or "refused", outcome.user_id)
        raise _unauthorized("invalid or expired token, or not allowed from here", presented=True)
    with ctx.appdb.transaction() as session:
        viewer = load_viewer(ctx.moodle, session, token.userid)
    if viewer is None:
        _audit_failed_authentication(f"token {token.prefix}: user cannot sign in", token.userid)
        raise _unauthorized("the token's user can no longer sign in", presented=True)
    return ApiCaller(token=token, viewer=viewer, scopes=MOODLE_TOKEN_SCOPES)


def _enforce_rate_limit(caller: ApiCaller) -> None:
    ctx = web_context()
    limit = ctx.settings.api_rate_limit_per_minute
    wait = limiter().admit(AttemptCounters(ctx.appdb.engine), caller.rate_bucket, limit)
    if wait is not None:
        message = f"more than {limit} requests a minute with this token; try again in {wait} s"
        raise ApiError(429, message, headers={"Retry-After": str(wait)})


def deny(caller: ApiCaller, message: str, company_id: int | None = None) -> ApiError:
    """Audit a refusal and give the 403 to raise."""
    audit_denial(caller.viewer, f"token {caller.token.prefix}: {message}", company_id)
    return ApiError(403, message)


def require_token(scope: str, *capabilities: str, action: Action = VIEW) -> Callable[[F], F]:
    """A valid bearer token carrying ``scope``, whose user holds one of ``capabilities``;
    ``action`` is what the view does to a company (`token_scope` asks `scope_for` for it)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            caller = _authenticate()
            g.api_caller = caller
            g.api_action = action
            _enforce_rate_limit(caller)
            if scope not in caller.scopes:
                error = deny(caller, f"this token lacks the scope {scope}")
                error.headers["WWW-Authenticate"] = (
                    f'{REALM}, error="insufficient_scope", scope="{scope}"'
                )
                raise error
            if capabilities and not caller.viewer.can_any(capabilities):
                raise deny(caller, f"you need the capability {' or '.join(capabilities)}")
            return view(*args, **kwargs)

        guarded.tenancy = Tenancy.TOKEN  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def requested_company() -> int | None:
    """The `?company=` of this call; 400 naming the field when it is not a company id."""
    return parse_optional_id(request.args.get("company"), "company")


def token_scope(company_id: int | None) -> TenantScope:
    """The tenant scope of this call: the token's company, else the one asked for.

    A company-restricted token asking for another company, or a user asking for a company
    that is not theirs, is refused with 403 and an audit entry.
    """
    caller = api_caller()
    restricted = caller.token.companyid
    if restricted is not None:
        if company_id is not None and company_id != restricted:
            raise TenantViolation(company_id, f"this token is restricted to company {restricted}")
        company_id = restricted
    scope = scope_for(caller.viewer, company_id, g.api_action)
    if sees_every_company(caller.viewer):  # anyone else's companies come from Moodle itself
        require_company(web_context().moodle, company_id)
    return scope
