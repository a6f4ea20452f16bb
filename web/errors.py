"""One answer per kind of failure, for the whole web tier.

- `TenantViolation` (another company's data, a missing capability): 403, audited once here.
- `NotFound` (no such object anywhere): 404.
- `FieldError` (bad input that a view did not render itself): its status with every field
  and reason.
- HTTP errors (`abort`): their status.
Browsers get the page in the app's layout; AJAX and API callers get JSON
(`{"error": reason, "field"?: name, "errors"?: [{field, error}, …]}`) with the status.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from common.errors import FieldError
from common.tenancy import NotFound, TenantViolation
from web.auth.guards import audit_denial, optional_viewer

TITLES = {
    400: "Bad request",
    401: "Sign in required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Too large",
    422: "Please check your input",
}


def wants_json() -> bool:
    """AJAX and API callers get errors as JSON; browsers get a page."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return (
        best == "application/json"
        or request.path.endswith("/data")
        or request.path.startswith("/api/")
    )


def error_response(status: int, message: str, fields: list[FieldError] | None = None) -> Any:
    if wants_json():
        body: dict[str, Any] = {"error": message}
        if fields:
            body.update(fields[0].as_dict())
            if len(fields) > 1:
                body["errors"] = [f.as_dict() for f in fields]
        return jsonify(body), status
    page = render_template("error.html", status=status, title=TITLES.get(status, "Error"),
                           message=message, fields=fields or [])  # fmt: skip
    return page, status


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(TenantViolation)
    def _violation(exc: TenantViolation) -> Any:
        caller = g.get("api_caller")
        viewer = caller.viewer if caller is not None else optional_viewer()
        reason = str(exc) if caller is None else f"token {caller.token.prefix}: {exc}"
        audit_denial(viewer, reason, exc.company_id)
        return error_response(403, str(exc))

    @app.errorhandler(NotFound)
    def _not_found(exc: NotFound) -> Any:
        return error_response(404, str(exc))

    @app.errorhandler(FieldError)
    def _field_error(exc: FieldError) -> Any:
        return error_response(exc.status, str(exc), exc.errors)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        status = exc.code or 500
        return error_response(status, exc.description or TITLES.get(status, exc.name))
