"""The identity mapping admin page on the two-company site: upload → the pending batch with
each row's result (errors by line and field, paged) → apply; the summary per source; finding a
mapping. Site administrators only (403, audited, on every route and method); CSRF on the
upload and apply forms."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from common.migrate import upgrade
from common.models.access import AuditLog
from common.models.identity import IdentityImportRow, IdentityMapping
from tests.factories.sites import NOW, Site
from tests.support import make_settings
from tests.web.conftest import csrf_token
from web.app import create_app

PAGE = "/admin/identity-mapping"
GOOD = (b"lms_source,lms_user_id,google_email,full_name\r\n"
        b"canvas,101,ada@acme.example,Ada Lovelace\r\n"
        b"moodle,7,bob@acme.example,\r\n")  # fmt: skip
BAD = (b"lms_source,lms_user_id,google_email\n"
       b"canvas,1,one@acme.example\n"
       b"canvas,2,two@gmail.com\n"
       b"sakai,3,three@acme.example\n")  # fmt: skip


@pytest.fixture
def app(site: Site, tmp_path: Path, nats_server) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, MOODLE_DATABASE_URL=site.url, NATS_URL=nats_server.url,
                             GOOGLE_WORKSPACE_DOMAINS="acme.example")  # fmt: skip
    upgrade(settings.database_url)
    application = create_app(settings)
    application.extensions["manireports"].clock = lambda: NOW
    yield application
    application.extensions["manireports"].close()


def count(app: Flask, model, *where) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def upload(client, data: bytes, token: str | None, **form: str):  # type: ignore[no-untyped-def]
    fields: dict[str, object] = {"file": (io.BytesIO(data), "map.csv"), **form}
    if token is not None:
        fields["csrf_token"] = token
    return client.post(f"{PAGE}/upload", data=fields, content_type="multipart/form-data")


def batch_of(response) -> str:  # type: ignore[no-untyped-def]
    match = re.search(r"/batches/([0-9a-f-]{36})$", response.headers["Location"])
    assert match, response.headers.get("Location")
    return match.group(1)


def test_upload_review_apply_then_summary_and_search(app, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    index = admin.get(PAGE).get_data(as_text=True)
    assert "Identity mapping" in index and "No mappings yet" in index
    staged = upload(admin, GOOD, csrf_token(admin, PAGE))
    assert staged.status_code == 302
    batch = batch_of(staged)
    page = admin.get(f"{PAGE}/batches/{batch}").get_data(as_text=True)
    assert "2 rows read, all valid" in page and 'id="apply"' in page
    assert "Ada Lovelace" in page and "by Admin User" in page
    assert count(app, IdentityMapping) == 0
    pending = admin.get(PAGE).get_data(as_text=True)
    assert f"/batches/{batch}" in pending and "Review and apply" in pending

    applied = admin.post(f"{PAGE}/batches/{batch}/apply",
                         data={"csrf_token": csrf_token(admin, PAGE)})  # fmt: skip
    assert applied.status_code == 303
    after = admin.get(PAGE).get_data(as_text=True)
    assert "Applied: 2 new, 0 updated, 0 unchanged." in after
    assert f"/batches/{batch}" not in after  # no longer pending
    assert re.search(r"<th scope=\"row\">canvas</th><td class=\"num\"[^>]*>1</td>", after)
    assert count(app, IdentityMapping) == 2
    assert count(app, AuditLog, AuditLog.action == "identity_import_applied") == 1

    token = csrf_token(admin, PAGE)
    again = admin.post(f"{PAGE}/batches/{batch}/apply", data={"csrf_token": token},
                       follow_redirects=True)  # fmt: skip
    assert "applied already" in again.get_data(as_text=True)
    assert count(app, AuditLog, AuditLog.action == "identity_import_applied") == 1

    by_id = admin.get(PAGE, query_string={"source": "canvas", "user_id": "101"})
    assert "ada@acme.example" in by_id.get_data(as_text=True)
    by_email = admin.get(PAGE, query_string={"email": "BOB@acme.example"}).get_data(as_text=True)
    assert (
        "bob@acme.example" in by_email and "ada@acme.example" not in by_email.split('id="found"')[1]
    )
    none = admin.get(PAGE, query_string={"email": "nobody@acme.example"})
    assert "No mapping matches" in none.get_data(as_text=True)


def test_rows_in_error_are_shown_by_line_and_field_and_cannot_be_applied(app, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    batch = batch_of(upload(admin, BAD, csrf_token(admin, PAGE)))
    page = admin.get(f"{PAGE}/batches/{batch}").get_data(as_text=True)
    assert "3 rows read; 2 with problems" in page
    assert 'id="apply"' not in page and "cannot be applied" in page
    assert re.search(r'id="line-3".*?google_email</strong>: domain gmail.com', page, re.S)
    assert re.search(r'id="line-4".*?lms_source</strong>: unknown source', page, re.S)
    assert 'id="line-2"' not in page  # only the rows with problems, until asked for all
    assert 'id="line-2"' in admin.get(f"{PAGE}/batches/{batch}?show=all").get_data(as_text=True)
    token = csrf_token(admin, PAGE)
    refused = admin.post(f"{PAGE}/batches/{batch}/apply", data={"csrf_token": token},
                         follow_redirects=True)  # fmt: skip
    assert "rows in error" in refused.get_data(as_text=True)
    assert count(app, IdentityMapping) == 0


def test_a_large_batch_is_paged(app, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    rows = "".join(f"canvas,{i},u{i}@elsewhere.example\n" for i in range(250))
    batch = batch_of(upload(admin, b"lms_source,lms_user_id,google_email\n" + rows.encode(),
                            csrf_token(admin, PAGE)))  # fmt: skip
    first = admin.get(f"{PAGE}/batches/{batch}").get_data(as_text=True)
    assert "Page 1 of 3" in first and 'id="line-101"' in first and 'id="line-102"' not in first
    last = admin.get(f"{PAGE}/batches/{batch}?page=3").get_data(as_text=True)
    assert 'id="line-251"' in last and 'id="line-201"' not in last
    assert admin.get(f"{PAGE}/batches/{batch}?page=99").status_code == 200  # back to page 1


def test_unreadable_files_and_missing_files_are_422_naming_the_field(app, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    token = csrf_token(admin, PAGE)
    header = upload(admin, b"name,mail\nx,y\n", token)
    assert header.status_code == 422 and "the header must be" in header.get_data(as_text=True)
    roster = upload(admin, b"sourcedId,username,email\ns1,ana,ana@acme.example\n", token)
    assert roster.status_code == 422 and 'href="#source"' in roster.get_data(as_text=True)
    named = upload(admin, b"sourcedId,username,email\ns1,ana,ana@acme.example\n", token,
                   source="canvas")  # fmt: skip
    assert named.status_code == 302
    empty = admin.post(f"{PAGE}/upload", data={"csrf_token": token},
                       content_type="multipart/form-data")  # fmt: skip
    assert empty.status_code == 422 and "choose a CSV file" in empty.get_data(as_text=True)
    assert count(app, IdentityImportRow) == 1


def test_upload_and_apply_need_the_csrf_token(app, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    refused = upload(admin, GOOD, None)
    assert refused.status_code == 400 and count(app, IdentityImportRow) == 0
    batch = batch_of(upload(admin, GOOD, csrf_token(admin, PAGE)))
    forged = admin.post(f"{PAGE}/batches/{batch}/apply", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert count(app, IdentityMapping) == 0


def test_unknown_batches_are_404(app, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    token = csrf_token(admin, PAGE)
    for batch in ("None", "00000000-0000-0000-0000-000000000000"):
        assert admin.get(f"{PAGE}/batches/{batch}").status_code == 404
        assert admin.post(f"{PAGE}/batches/{batch}/apply",
                          data={"csrf_token": token}).status_code == 404  # fmt: skip


@pytest.mark.parametrize("who", ["mgr_a", "dept_a", "teacher_a", "ana"])
def test_only_site_admins_reach_any_route(app, client_as, who):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    batch = batch_of(upload(admin, GOOD, csrf_token(admin, PAGE)))
    client = client_as(who)
    token = csrf_token(client, "/dashboards/")
    before = count(app, AuditLog, AuditLog.action == "access_denied")
    assert client.get(PAGE).status_code == 403
    assert client.get(f"{PAGE}/batches/{batch}").status_code == 403
    assert upload(client, GOOD, token).status_code == 403
    assert client.post(f"{PAGE}/batches/{batch}/apply",
                       data={"csrf_token": token}).status_code == 403  # fmt: skip
    assert count(app, AuditLog, AuditLog.action == "access_denied") == before + 4
    assert count(app, IdentityMapping) == 0 and count(app, IdentityImportRow) == 2
    assert 'href="/admin/identity-mapping"' not in client.get("/dashboards/").get_data(as_text=True)
    assert 'href="/admin/identity-mapping"' in admin.get("/dashboards/").get_data(as_text=True)


def test_signed_out_visitors_are_sent_to_sign_in(app):  # type: ignore[no-untyped-def]
    response = app.test_client().get(PAGE)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
