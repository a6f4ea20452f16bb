"""The route walker: every route, every method, every role of Acme against Bolt's objects.

Each view must declare its tenancy (a view without one fails here). Then each role — company
manager, department manager, a manager of Acme who is a plain member of Bolt, teacher, teacher
in no company, student — asks every route for Bolt's company, job, token, SCORM activity,
learner and course, by query string, form and URL. Nothing may leak (no Bolt marker in any
answer), every 403 must be audited, no request may change Bolt's stored state, and nothing
may answer 500. The site admin, who may see Bolt, walks the same requests for 500s only.
"""

from __future__ import annotations

import io
import itertools
import re
import zipfile
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import func, select

from common.access.api_tokens import SCOPES, issue
from common.models.access import AuditLog
from common.reports import registered_reports
from common.reports.export import FORMATS
from tests.web.conftest import csrf_token, sign_in
from tests.web.other_company import (
    BOLT_MARKERS,
    LEARNER_NAMES,
    OtherCompany,
    bolt_state,
    build_bolt_objects,
)
from web.auth.guards import Tenancy


def names(*who: str) -> tuple[str, ...]:
    return tuple(LEARNER_NAMES[w] for w in who)


# role -> (username, what else it must never see besides Bolt's markers)
ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "company manager": ("mgr_a", names("yuri", "zoe") + ("Bolt",)),
    "department manager": ("dept_a", names("yuri", "zoe", "cara", "dan") + ("Bolt",)),
    "manager of Acme, plain member of Bolt": ("mgr_a_in_b", names("yuri", "zoe")),
    "teacher": ("teacher_a", names("yuri", "zoe", "dan") + ("Bolt",)),
    # Teaches the shared course, where Yuri and Zoe learn too.
    "teacher in no company": ("teacher_solo", names("ben", "cara", "dan") + ("Bolt",)),
    "student": ("ana", names("ben", "cara", "dan", "yuri", "zoe") + ("Bolt",)),
}
SKIPPED_ENDPOINTS = {"static"}


def endpoints_without_tenancy(app: Flask) -> list[str]:
    missing = []
    for endpoint, view in app.view_functions.items():
        if endpoint in SKIPPED_ENDPOINTS:
            continue
        declared = getattr(view, "tenancy", None)
        if declared is None or declared not in {t.value for t in Tenancy}:
            missing.append(endpoint)
    return missing


def test_every_route_declares_its_tenancy(app):
    assert endpoints_without_tenancy(app) == []


def test_a_route_without_a_declaration_fails_the_walker(app):
    @app.get("/undeclared-for-the-test")
    def undeclared():  # type: ignore[no-untyped-def]
        return "data"

    assert endpoints_without_tenancy(app) == ["undeclared"]


def url_values(bolt: OtherCompany) -> dict[str, Any]:
    """Bolt's object for every URL variable and request parameter the routes read."""
    return {
        "company": bolt.company, "job": bolt.job, "job_id": bolt.job, "token": bolt.token,
        "scormid": bolt.scorm, "userid": bolt.learner, "learner": bolt.learner,
        "course": bolt.course, "attempt": 1, "type": "bulk", "ruletype": "min_time_7d_minutes",
        "threshold": "1", "weight": "1", "enabled": "1", "note": "acknowledged",
        "username": "mgr_b", "scopes": "email:write", "name": "walker", "user": bolt.learner,
        "subject": "Hello", "html": "<p>Hello</p>", "recipients": "someone@acme.example",
        "provider": "smtp", "sender_email": "noreply@acme.example", "chunk_size": "100",
        "rate_per_s": "1", "smtp__host": "smtp.acme.example", "action": "save",
        "test_to": "someone@acme.example", "next": "/dashboards/",
        "schedule_id": bolt.schedule, "dashboard_id": bolt.dashboard,
    }  # fmt: skip


def requests_for(app: Flask, bolt: OtherCompany):  # type: ignore[no-untyped-def]
    """(method, path, params) for every route and method, pointed at Bolt's objects (a route
    with a report name or an export format: once for each registered report and format)."""
    values = url_values(bolt)
    every = {"name": [r.type_name for r in registered_reports()], "fmt": list(FORMATS)}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED_ENDPOINTS:
            continue
        args = sorted(rule.arguments)
        for chosen in itertools.product(*(every.get(a, [values.get(a)]) for a in args)):
            path = rule.rule
            for arg, value in zip(args, chosen, strict=True):
                path = re.sub(rf"<(?:[a-z]+:)?{arg}>", str(value), path)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, path, values


def denials_for(app: Flask, method: str, path: str) -> int:
    with app.extensions["manireports"].appdb.transaction() as db:
        return int(db.scalar(select(func.count()).where(
            AuditLog.action == "access_denied", AuditLog.object_id == f"{method} {path}"
        )) or 0)  # fmt: skip


def signed_in_client(app: Flask, username: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    assert sign_in(client, username).status_code == 302, username
    return client, csrf_token(client, "/dashboards/")


def call(app, client, token, bearer, method, path, values):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {bearer}"} if path.startswith("/api/") else {}
    if method == "GET":
        return client.get(path, query_string=values, headers=headers)
    if path.startswith("/api/"):
        body = {"type": "bulk", "subject": "Hi", "html": "<p>Hi</p>", "company": values["company"],
                "recipients": [{"email": "someone@acme.example"}]}  # fmt: skip
        return client.open(path, method=method, json=body, headers=headers,
                           query_string={"company": values["company"]})  # fmt: skip
    form = {**values, "csrf_token": token}
    return client.open(path, method=method, data=form, headers=headers,
                       query_string={"company": values["company"]})  # fmt: skip


def readable_text(response: Any) -> str:
    """What a person would read in the response: the text of a page or CSV, the cells of an
    XLSX, the text of a PDF (so markers are looked for inside exports too)."""
    data = response.get_data()
    kind = response.mimetype
    if kind == "application/pdf":
        return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    if kind == "application/zip":  # a privacy export: JSON files
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "\n".join(archive.read(name).decode("utf-8") for name in archive.namelist())
    if kind.endswith("spreadsheetml.sheet"):
        book = load_workbook(io.BytesIO(data), read_only=True)
        return "\n".join(str(cell) for sheet in book for row in sheet.iter_rows(values_only=True)
                         for cell in row if cell is not None)  # fmt: skip
    return data.decode("utf-8")


def api_token(app: Flask, user_id: int) -> str:
    with app.extensions["manireports"].appdb.transaction() as session:
        plaintext, _ = issue(session, user_id, "walker", tuple(SCOPES), None, None)
    return plaintext


@pytest.mark.parametrize("role", sorted(ROLES))
def test_no_role_reaches_another_companys_objects(app, site, role):
    bolt = build_bolt_objects(app, site)
    username, also_forbidden = ROLES[role]
    markers = BOLT_MARKERS + also_forbidden
    bearer = api_token(app, site.users[username])
    before = bolt_state(app, bolt.company)
    walked, problems = 0, []
    for method, path, values in requests_for(app, bolt):
        # A fresh sign-in per request: some routes end the session or switch company.
        client, token = signed_in_client(app, username)
        denied_before = denials_for(app, method, path)
        response = call(app, client, token, bearer, method, path, values)
        walked += 1
        body = readable_text(response)
        where = f"{role}: {method} {path} -> {response.status_code}"
        if response.status_code >= 500:
            problems.append(f"{where}: server error")
        leaked = [m for m in markers if m in body]
        if leaked:
            problems.append(f"{where}: shows {leaked}")
        if response.status_code == 403 and denials_for(app, method, path) <= denied_before:
            problems.append(f"{where}: refused without an audit entry")
    assert walked > 40
    assert problems == []
    assert bolt_state(app, bolt.company) == before, f"{role} changed Bolt's stored state"


def test_the_site_admin_walks_every_route_without_a_server_error(app, site):
    bolt = build_bolt_objects(app, site)
    bearer = api_token(app, site.users["admin"])
    errors = []
    for method, path, values in requests_for(app, bolt):
        client, token = signed_in_client(app, "admin")
        response = call(app, client, token, bearer, method, path, values)
        readable_text(response)  # a streamed export runs to its end, as a download would
        if response.status_code >= 500:
            errors.append(f"{method} {path} -> {response.status_code}")
    assert errors == []
