"""Every API error is JSON: `{"error": reason, "field"?: name}` with its HTTP status.

Views raise `ApiError`; aborts from shared code (Flask's HTTPException) are turned into the
same shape, so an API client never has to parse an HTML error page.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def error_response(error: ApiError) -> Response:
    body: dict[str, object] = {"error": error.message}
    if error.field is not None:
        body["field"] = error.field
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def install_error_handlers(bp: Blueprint) -> None:
    bp.register_error_handler(ApiError, error_response)

    def http_error(exc: HTTPException) -> Response:
        return error_response(ApiError(exc.code or 500, exc.description or exc.name))

    bp.register_error_handler(HTTPException, http_error)
