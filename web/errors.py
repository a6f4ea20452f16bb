"""One answer per kind of failure, for the whole web tier.

- `TenantViolation` (another company's data, a missing capability): 403, audited once here.
- `NotFound` (no such object anywhere): 404.
- `FieldError` (bad input that a view did not render itself): its status with every field
  and reason.
- HTTP errors (`abort`, unknown paths, wrong methods): their status, with their headers
  (`Allow` on a 405, `Retry-After` on a 429).
- Anything else: Flask logs it and hands it over as a 500; the caller sees no internals.
Browsers get the page in the app's layout; AJAX and API callers (a path under /api/ or ending
in /data, `Accept: application/json`, or `X-Requested-With: XMLHttpRequest`) get JSON
(`{"error": reason, "field"?: name, "errors"?: [{field, error}, …]}`) with the status.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, current_app, g, jsonify, render_template, render_template_string, request
from werkzeug.exceptions import HTTPException

from common.errors import FieldError
from common.tenancy import NotFound, TenantViolation
from web.auth.guards import audit_denial, optional_viewer


def reasons_by_field(errors: Iterable[FieldError]) -> dict[str, list[str]]:
    """A form's errors as its template's `by_field` (templates/form_errors.html): each
    field's reasons, in the order they were found."""
    found: dict[str, list[str]] = {}
    for error in errors:
        found.setdefault(error.field, []).append(error.reason)
    return found


TITLES = {
    400: "Bad request",
    401: "Sign in required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Too large",
    422: "Please check your input",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Service unavailable",
}
# Headers of an HTTP error that its answer must keep.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def wants_json() -> bool:
    """AJAX and API callers get errors as JSON; browsers get a page."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return (
        best == "application/json"
        or request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest"
        or request.path.endswith("/data")
        or request.path == "/api"
        or request.path.startswith("/api/")
    )


def error_response(
    status: int,
    message: str,
    fields: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    if wants_json():
        body: dict[str, Any] = {"error": message}
        if fields:
            body.update(fields[0].as_dict())
            if len(fields) > 1:
                body["errors"] = [f.as_dict() for f in fields]
        return jsonify(body), status, headers or {}
    try:
        page = render_template("error.html", status=status, title=TITLES.get(status, "Error"),
                               message=message, fields=fields or [])  # fmt: skip
    except Exception:  # noqa: BLE001  the layout itself failed (its database is down): plain
        current_app.logger.exception("error page could not render")
        title = TITLES.get(status, "Error")
        page = render_template_string(PLAIN_PAGE, status=status, title=title, message=message)
    return page, status, headers or {}


# The last resort when the layout cannot render: still styled by the app's stylesheet.
PLAIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ status }} · {{ title }} · ManiReports</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/css/app.css"></head>
<body><main class="container"><section class="card error-page">
<p class="error-status">{{ status }}</p><h1>{{ title }}</h1><p>{{ message }}</p>
<p><a href="/">Go to the start page</a></p>
</section></main></body></html>"""


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
        if status < 400:  # a redirect raised as an exception (RequestRedirect): not an error
            return exc
        kept = {k: v for k, v in exc.get_headers() if k in KEPT_HEADERS}
        if exc.response is not None:
            kept.update({k: v for k, v in exc.response.headers.items() if k in KEPT_HEADERS})
        message = exc.description or TITLES.get(status, exc.name)
        if status == 500:  # an unhandled exception (Flask hands it over as a 500): no internals
            message = "The server failed to answer this request; it has been logged."
        return error_response(status, message, headers=kept)
