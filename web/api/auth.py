"""Who is calling the API: the bearer token, the Moodle user it acts as, scopes and tenancy.

The token's user is loaded with `load_viewer` on every request, so a Moodle role change (or a
suspension) applies to their tokens at once. Failed authentication and every refusal are
audited; a missing header is not, since it is no attempt to authenticate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from common.access.api_tokens import check, granted_scopes
from common.access.viewer import Viewer, load_viewer
from common.audit import OUTCOME_FAILED, record_audit
from common.ids import parse_optional_id
from common.models.api import ApiToken
from common.tenancy import VIEW, Action, TenantScope, TenantViolation, scope_for
from web.api.errors import ApiError
from web.auth.guards import Tenancy, audit_denial, web_context

F = TypeVar("F", bound=Callable[..., Any])
REALM = 'Bearer realm="ManiReports"'


@dataclass(frozen=True)
class ApiCaller:
    token: ApiToken
    viewer: Viewer
    scopes: frozenset[str]


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


def _authenticate() -> ApiCaller:
    header = request.headers.get("Authorization", "")
    if not header:
        raise _unauthorized("send the header Authorization: Bearer <token>", presented=False)
    kind, _, presented = header.partition(" ")
    if kind.lower() != "bearer" or not presented.strip():
        _audit_failed_authentication("malformed Authorization header")
        raise _unauthorized("the Authorization header must be 'Bearer <token>'", presented=True)
    ctx = web_context()
    with ctx.appdb.transaction() as session:
        # Expiry is wall-clock time (check's default); ctx.clock only dates report ranges.
        outcome = check(session, presented.strip())
        token = outcome.token
        viewer = load_viewer(ctx.moodle, session, token.userid) if token else None
    if token is None:
        _audit_failed_authentication(outcome.refusal or "refused")
        raise _unauthorized("invalid, revoked or expired token", presented=True)
    if viewer is None:
        _audit_failed_authentication(f"token {token.prefix}: user cannot sign in", token.userid)
        raise _unauthorized("the token's user can no longer sign in", presented=True)
    return ApiCaller(token=token, viewer=viewer, scopes=granted_scopes(token))


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
    return scope_for(caller.viewer, company_id, g.api_action)
