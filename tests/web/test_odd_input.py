"""Odd numbers and odd parameters on every route answer 4xx, never 500.

`"²".isdigit()` is True and `int("²")` raises; `int("٣")` is 3; ids above 2^63−1 overflow the
database. Every route is asked, as a site admin (who passes every capability check and so
reaches the parsing), with each odd value in every URL variable and every parameter, with
empty and with repeated parameters.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask

from tests.web.conftest import csrf_token, sign_in
from tests.web.test_route_walker import SKIPPED_ENDPOINTS

ODD_VALUES = (
    "²", "٣", "１", "99999999999999999999999", "9223372036854775808", "-1", "0", " 1", "1 ",
    "+1", "1e3", "0x10", "1.0", "1_000", "", "\x00", "null", "[]", "%", "9" * 5000,
)  # fmt: skip
PARAMETERS = (
    "company", "job", "token", "page", "user", "learner", "course", "days", "type", "from",
    "to", "action", "ruletype", "threshold", "weight", "scormid", "attempt", "expires_days",
    "chunk_size", "rate_per_s", "id", "cm",
)  # fmt: skip


def routes(app: Flask):  # type: ignore[no-untyped-def]
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED_ENDPOINTS:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, rule.rule


def path_with(rule: str, value: str) -> str:
    """The rule's path with every variable replaced by ``value`` (no converter applied)."""
    return re.sub(r"<(?:[a-z]+:)?[a-z_]+>", value.replace("/", "") or "x", rule)


@pytest.fixture
def admin(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert sign_in(client, "admin").status_code == 302
    return client, csrf_token(client, "/dashboards/")


def test_odd_values_in_every_route_and_parameter(app, admin):
    client, token = admin
    failures = []
    for method, rule in routes(app):
        for value in ODD_VALUES:
            params = {name: value for name in PARAMETERS}
            path = path_with(rule, value)
            if method == "GET":
                response = client.get(path, query_string=params)
            else:
                response = client.open(path, method=method, data={**params, "csrf_token": token},
                                       query_string=params,
                                       headers={"X-ManiReports-Company": value})  # fmt: skip
            if response.status_code >= 500:
                failures.append(f"{method} {rule} with {value[:20]!r}: {response.status_code}")
    assert failures == []


def test_repeated_and_empty_parameters(app, admin):
    client, token = admin
    failures = []
    for method, rule in routes(app):
        path = path_with(rule, "1")
        query = "&".join(f"{p}=1&{p}=2&{p}=" for p in PARAMETERS)
        if method == "GET":
            response = client.get(f"{path}?{query}")
        else:
            response = client.open(f"{path}?{query}", method=method,
                                   data={"csrf_token": token})  # fmt: skip
        if response.status_code >= 500:
            failures.append(f"{method} {rule}: {response.status_code}")
    assert failures == []


def test_the_callback_endpoint_refuses_an_odd_company_header_before_anything_else(app):
    response = app.test_client().post(
        "/callbacks/cloud", data=b"{}", headers={"X-ManiReports-Company": "²"}
    )
    assert response.status_code in (400, 401)
