"""Error answers: a page in the app's layout for browsers, JSON for the API and AJAX, each
status with its own title and the headers it must keep; and the favicon."""

from __future__ import annotations

import pytest
from flask import Flask, abort

from common.errors import FieldError, FieldErrors
from web.auth.guards import Tenancy, open_to

AJAX = {"X-Requested-With": "XMLHttpRequest"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def failing_app(app: Flask) -> Flask:
    """The app with routes that fail each way (added before its first request)."""

    @open_to(Tenancy.PUBLIC)
    def boom():  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internals /etc/passwd")

    @open_to(Tenancy.PUBLIC)
    def slow_down():  # type: ignore[no-untyped-def]
        from werkzeug.exceptions import TooManyRequests

        raise TooManyRequests(description="Slow down.", retry_after=17)

    @open_to(Tenancy.PUBLIC)
    def fields():  # type: ignore[no-untyped-def]
        raise FieldErrors([FieldError("subject", "is empty"), FieldError("html", "too long")])

    @open_to(Tenancy.PUBLIC)
    def bad():  # type: ignore[no-untyped-def]
        abort(400, description="page: must be a page number")

    app.add_url_rule("/_test/boom", view_func=boom)
    app.add_url_rule("/_test/slow", view_func=slow_down)
    app.add_url_rule("/_test/fields", view_func=fields)
    app.add_url_rule("/_test/bad", view_func=bad)
    return app


def in_layout(html: str) -> bool:
    return 'class="topbar"' in html and "css/app.css" in html and 'rel="icon"' in html


@pytest.mark.parametrize(
    ("path", "status", "title"),
    [
        ("/_test/bad", 400, "Bad request"),
        ("/no/such/page", 404, "Not found"),
        ("/_test/fields", 422, "Please check your input"),
        ("/_test/slow", 429, "Too many requests"),
        ("/_test/boom", 500, "Something went wrong"),
    ],
)
def test_browsers_get_a_page_in_the_layout(failing_app, path, status, title):
    response = failing_app.test_client().get(path, headers={"Accept": "text/html"})
    assert response.status_code == status
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert in_layout(html), html[:300]
    assert f"<title>{status} · {title} · ManiReports</title>" in html
    assert "Unprocessable Entity" not in html and "Traceback" not in html


def test_a_500_shows_no_internals(failing_app):
    for headers in ({}, JSON):
        body = failing_app.test_client().get("/_test/boom", headers=headers).get_data(as_text=True)
        assert "secret internals" not in body and "passwd" not in body


def test_several_field_errors_are_listed(failing_app):
    html = failing_app.test_client().get("/_test/fields").get_data(as_text=True)
    assert "<strong>subject</strong>: is empty" in html
    assert "<strong>html</strong>: too long" in html


@pytest.mark.parametrize("headers", [AJAX, JSON])
def test_ajax_and_json_callers_get_json(failing_app, headers):
    client = failing_app.test_client()
    response = client.get("/no/such/page", headers=headers)
    assert response.status_code == 404 and response.is_json
    assert set(response.get_json()) == {"error"}
    response = client.get("/_test/fields", headers=headers)
    assert response.status_code == 422
    assert response.get_json()["field"] == "subject"
    assert response.get_json()["errors"] == [
        {"field": "subject", "error": "is empty"}, {"field": "html", "error": "too long"},
    ]  # fmt: skip
    assert client.get("/_test/boom", headers=headers).get_json() == {
        "error": "The server failed to answer this request; it has been logged."
    }


def test_api_paths_get_json_whatever_they_accept(app):
    response = app.test_client().get("/api/v1/no-such-thing", headers={"Accept": "text/html"})
    assert response.status_code == 404 and response.is_json


def test_status_headers_are_kept(failing_app):
    client = failing_app.test_client()
    response = client.get("/_test/slow")
    assert response.headers["Retry-After"] == "17"
    response = client.delete("/login")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"] and in_layout(response.get_data(as_text=True))
    assert client.delete("/login", headers=AJAX).headers["Allow"]


def test_a_signed_in_viewer_gets_the_menu_on_error_pages(client_as):
    html = client_as("admin").get("/no/such/page").get_data(as_text=True)
    assert 'aria-label="Main"' in html and "Back to your dashboards" in html


def test_favicon_is_served_and_linked(app):
    client = app.test_client()
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.get_data(as_text=True).startswith("<svg")
    assert client.get("/static/favicon.svg").status_code == 200
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/login").get_data(
        as_text=True
    )
