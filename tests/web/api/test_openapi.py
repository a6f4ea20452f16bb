"""The OpenAPI 3.1 document: public, generated from the registry, true to every route, and
checked by schemathesis against the running app (no 500, no response off the schema)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from common.reports import registered_reports
from common.reports.export import FORMATS
from tests.web.api.conftest import bearer
from web.api.openapi import openapi_document

DOC = "/api/v1/openapi.json"
# Per operation: enough to walk every parameter's kinds and edges, fast enough for CI.
MAX_EXAMPLES = 25
PDF_EXAMPLES = 5


def document_paths(app: Flask) -> set[tuple[str, str]]:
    """(METHOD, path) of every /api/v1 route, in the document's spelling: a report name or an
    export format in the URL becomes each registered one."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        paths = [re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)]
        if "{name}" in paths[0]:
            names = [r.type_name for r in registered_reports()] + ["custom_{id}"]
            paths = [p.replace("{name}", name) for p in paths for name in names]
        if "{fmt}" in paths[0]:
            paths = [p.replace("{fmt}", f) for p in paths for f in FORMATS]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.update((method, p) for p in paths)
    return found


def test_the_document_is_public_json_and_valid_openapi_3_1(app):
    response = app.test_client().get(DOC)  # no token
    assert response.status_code == 200 and response.is_json
    doc = response.get_json()
    assert doc["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(doc).validate()  # the OpenAPI 3.1 meta-schema


def test_every_route_is_described_and_every_described_path_is_a_route(app):
    doc = openapi_document()
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert described == document_paths(app)


def test_each_report_is_described_from_its_definition():
    doc = openapi_document()
    for report in registered_reports():
        op = doc["paths"][f"/api/v1/reports/{report.type_name}"]["get"]
        params = {p["name"]: p["schema"] for p in op["parameters"]}
        assert {p.name for p in report.params} | {
            "company",
            "page",
            "page_size",
            "sort",
            "dir",
        } == set(params)
        assert params["sort"]["enum"] == [c.key for c in report.columns if c.sortable]
        for param in report.params:
            if param.kind == "choice":
                assert params[param.name]["enum"] == list(param.choices)
        rows = op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["rows"]
        assert list(rows["items"]["properties"]) == [c.key for c in report.columns]
        for fmt, export in FORMATS.items():
            exported = doc["paths"][f"/api/v1/reports/{report.type_name}/export.{fmt}"]["get"]
            assert export.media_type.split(";")[0] in exported["responses"]["200"]["content"]


def test_errors_security_and_statuses_are_documented():
    doc = openapi_document()
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and set(error["properties"]) == {
        "error",
        "field",
        "errors",
    }
    assert doc["components"]["securitySchemes"]["bearer"] == {
        **doc["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    responses = doc["components"]["responses"]
    assert "WWW-Authenticate" in responses["Unauthorized"]["headers"]
    assert responses["TooManyRequests"]["headers"]["Retry-After"]["required"] is True
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            statuses = set(op["responses"])
            if op.get("security") == []:
                assert path in ("/api/v1/openapi.json", "/api/v1/docs")
                continue
            assert {"401", "403", "429"} <= statuses, f"{method} {path}"
            if op["parameters"]:
                assert "400" in statuses, f"{method} {path}"
    assert "422" in doc["paths"]["/api/v1/email/jobs"]["post"]["responses"]
    assert "404" in doc["paths"]["/api/v1/dashboard"]["get"]["responses"]


def test_the_reference_page_renders_the_document(app):
    response = app.test_client().get("/api/v1/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for path, ops in openapi_document()["paths"].items():
        for method in ops:
            assert f"{method.upper()} {path}" in page
    # The CSP allows no remote nor inline script: only the app's own files (the menu's).
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert all(re.search(r'src="/static/', attrs) and not body.strip() for attrs, body in scripts)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "Retry-After" in page and "WWW-Authenticate" in page


def _conformance_failures(
    app: Flask,
    headers: dict[str, str],
    label: str,
    mode: GenerationMode = GenerationMode.POSITIVE,
    max_examples: int = MAX_EXAMPLES,
) -> list[str]:
    schema = schemathesis.openapi.from_wsgi(DOC, app)
    failures: list[str] = []
    checks = [not_a_server_error, response_schema_conformance, status_code_conformance]
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != "GET":
            continue  # POST creates email jobs: covered by the email job tests
        if mode is GenerationMode.NEGATIVE and (
            (not operation.path_parameters and not operation.query) or "/export." in operation.path
        ):
            continue  # nothing to make invalid; an export parses its query as the data does

        # A PDF takes ~50 times a CSV's time to render and parses the same query: fewer.
        examples = (
            min(max_examples, PDF_EXAMPLES) if operation.path.endswith(".pdf") else max_examples
        )

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=checks)

        try:
            run()
        except Exception as exc:  # every operation is tried; all failures are reported
            failures.append(f"{label}: {operation.method.upper()} {operation.path}: {exc}")
    return failures


@pytest.mark.timeout(900)
def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(app, site, token_for):
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(api_rate_limit_per_minute=0)  # hundreds of calls
    site.moodle.enable_web_services()
    site.moodle.external_token(site.users["mgr_a"], token="0123456789abcdef0123456789abcdef")
    failures = _conformance_failures(app, bearer(token_for("admin")), "site admin")
    # A company manager by Moodle token: scoped reads, 403s for the other company.
    failures += _conformance_failures(app, bearer("0123456789abcdef0123456789abcdef"), "manager")
    # Values the document rules out (a page of -1, a date of "x"): 4xx in the error shape.
    failures += _conformance_failures(
        app, bearer(token_for("admin")), "invalid input", GenerationMode.NEGATIVE, 10
    )
    assert failures == []
