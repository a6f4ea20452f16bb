"""The identity mapping admin page on the two-company site: upload → the pending batch with
each row's result (errors by line and field, paged) → apply; the summary per source; finding a
mapping and deleting it (confirmed, audited); the people parked for want of a mapping, by name
and paged, and the classroom sync an applied batch asks for when it maps any of them (each test
has a nats-server of its own, so the commands published are exactly the test's). Site
administrators only (403, audited, on every route and method); CSRF on every form."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select

from common.identity.parked import record_sync
from common.migrate import upgrade
from common.models.access import AuditLog
from common.models.identity import IdentityImportRow, IdentityMapping
from common.nats_server import EmbeddedNatsServer
from tests.factories.sites import NOW, Site
from tests.support import make_settings
from tests.web import bus_commands
from tests.web.bus_commands import published
from tests.web.conftest import csrf_token, sign_in
from web.app import create_app
from web.humanize import exact_text

nats_server = bus_commands.nats_server  # a server of each test's own

PAGE = "/admin/identity-mapping"
GOOD = (b"lms_source,lms_user_id,google_email,full_name\r\n"
        b"canvas,101,ada@acme.example,Ada Lovelace\r\n"
        b"moodle,7,bob@acme.example,\r\n")  # fmt: skip
BAD = (b"lms_source,lms_user_id,google_email\n"
       b"canvas,1,one@acme.example\n"
       b"canvas,2,two@gmail.com\n"
       b"sakai,3,three@acme.example\n")  # fmt: skip


def make_app(site: Site, tmp_path: Path, nats_url: str) -> Flask:
    settings = make_settings(tmp_path, MOODLE_DATABASE_URL=site.url, NATS_URL=nats_url,
                             GOOGLE_WORKSPACE_DOMAINS="acme.example")  # fmt: skip
    upgrade(settings.database_url)
    application = create_app(settings)
    application.extensions["manireports"].clock = lambda: NOW
    return application


@pytest.fixture
def app(site: Site, tmp_path: Path, nats_server) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    application = make_app(site, tmp_path, nats_server.url)
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


# --- parked people and the sync an import asks for ---------------------------------------------

PARKED_AT = datetime.fromtimestamp(NOW, UTC) - timedelta(days=2)


def park(app: Flask, people: list[tuple[str, str, int]], *, at: datetime = PARKED_AT) -> None:
    """A roster sync of the people's courses that parked them."""
    with app.extensions["manireports"].appdb.transaction() as session:
        record_sync(session, {c for _, _, c in people},
                    [{"source": s, "user_id": u, "course_id": c,
                      "error": f"no Google email is mapped for {s} user {u}"}
                     for s, u, c in people], at)  # fmt: skip


def section(page: str, anchor: str) -> str:
    return page.split(f'id="{anchor}"')[1].split("</section>")[0]


def test_parked_people_are_listed_by_name_with_their_course_and_problem(app, site, client_as):  # type: ignore[no-untyped-def]
    ana, fire = site.users["ana"], site.courses["Fire Safety"]
    park(app, [("moodle", str(ana), fire), ("moodle", "999999", fire),
               ("canvas", "c-7", site.courses["First Aid"])])  # fmt: skip
    park(app, [("moodle", str(ana), fire), ("moodle", "999999", fire)],
         at=PARKED_AT + timedelta(hours=1))  # fmt: skip
    site.moodle._update("user", site.users["admin"], timezone="Asia/Tokyo")
    admin = client_as("admin")
    parked = section(admin.get(PAGE).get_data(as_text=True), "parked")
    assert "Waiting for a mapping" in parked and "(3)" in parked
    rows = parked.split("<tbody>")[1].split("<tr>")[1:]
    assert "Ana Learner" in rows[0] and f"moodle {ana}" in rows[0] and "Fire Safety" in rows[0]
    assert f"no Google email is mapped for moodle user {ana}" in rows[0]
    assert re.search(r'data-label="Attempts">2<', rows[0])
    assert "not in Moodle any more" in rows[1]  # a deleted Moodle user: said, not an empty cell
    assert "canvas c-7" in rows[2] and "First Aid" in rows[2]
    assert re.search(r'data-label="Attempts">1<', rows[2])
    # First parked and last tried, in the viewer's zone.
    tokyo = ZoneInfo("Asia/Tokyo")
    first, last = exact_text(PARKED_AT, tokyo), exact_text(PARKED_AT + timedelta(hours=1), tokyo)
    assert re.search(rf'First parked">.*{first}.*Last tried">.*{last}', rows[0], re.S)
    assert "JST" in first
    with app.extensions["manireports"].appdb.transaction() as session:
        record_sync(session, [fire, site.courses["First Aid"]], [], datetime.now(UTC))
    assert "No one: the roster sync placed everyone" in admin.get(PAGE).get_data(as_text=True)


def test_the_parked_list_is_paged(app, site, client_as):  # type: ignore[no-untyped-def]
    fire = site.courses["Fire Safety"]
    park(app, [("canvas", f"p{n:03d}", fire) for n in range(120)])
    admin = client_as("admin")
    first = section(admin.get(PAGE).get_data(as_text=True), "parked")
    assert "(120)" in first and "Page 1 of 3 (1–50 of 120)" in first
    assert "canvas p000" in first and "canvas p049" in first and "canvas p050" not in first
    assert "parked_page=2" in first and 'rel="prev"' not in first
    last = section(admin.get(PAGE, query_string={"parked_page": "3"}).get_data(as_text=True),
                   "parked")  # fmt: skip
    assert "Page 3 of 3 (101–120 of 120)" in last and "canvas p119" in last
    assert "canvas p099" not in last and 'rel="next"' not in last
    odd = admin.get(PAGE, query_string={"parked_page": "99"}).get_data(as_text=True)
    assert "Page 1 of 3" in odd  # back to page 1
    searched = admin.get(PAGE, query_string={"parked_page": "2", "source": "canvas",
                                             "user_id": "p001"}).get_data(as_text=True)  # fmt: skip
    assert "user_id=p001" in section(searched, "parked")  # the pager keeps the search
    found = section(admin.get(PAGE, query_string={"parked_q": "p007"}).get_data(as_text=True),
                    "parked")  # fmt: skip
    assert "canvas p007" in found and "canvas p008" not in found and "(1)" in found
    none = section(admin.get(PAGE, query_string={"parked_q": "nobody"}).get_data(as_text=True),
                   "parked")  # fmt: skip
    assert "No one waiting matches “nobody”" in none


def apply_file(admin, data: bytes):  # type: ignore[no-untyped-def]
    batch = batch_of(upload(admin, data, csrf_token(admin, PAGE)))
    done = admin.post(f"{PAGE}/batches/{batch}/apply", data={"csrf_token": csrf_token(admin, PAGE)})
    assert done.status_code == 303
    return batch, admin.get(PAGE).get_data(as_text=True)


def test_applying_a_batch_that_maps_parked_people_syncs_exactly_their_courses(  # type: ignore[no-untyped-def]
    app, site, client_as, nats_server
):
    ana, ben = str(site.users["ana"]), str(site.users["ben"])
    fire, aid, ethics = (site.courses[n] for n in ("Fire Safety", "First Aid", "Shared Ethics"))
    park(app, [("moodle", ana, fire), ("moodle", ana, aid), ("moodle", ben, ethics),
               ("canvas", ben, site.courses["Forklift"])])  # fmt: skip
    admin = client_as("admin")
    # Ana (moodle) is mapped; Ben only as a blackboard user, who is someone else.
    header = b"lms_source,lms_user_id,google_email\n"
    rows = f"moodle,{ana},ana@acme.example\nblackboard,{ben},ben@acme.example\n"
    batch, page = apply_file(admin, header + rows.encode())
    [(subject, msg_id, payload)] = published(nats_server.url)
    assert subject == "mr.cmd.sync.classroom" and msg_id == f"identity:retry:{batch}"
    assert payload == {"task": "classroom_sync", "trigger": "import",
                       "courses": sorted([fire, aid])}  # fmt: skip
    assert "1 parked person will be retried: a Classroom sync of their 2 courses" in page
    waiting = section(page, "parked").split("<tbody>")[1].split("<tr>")[1:]
    assert ["Mapped since" in row for row in waiting] == [True, True, False, False]
    # A second click on the same batch is refused and publishes nothing more.
    token = csrf_token(admin, PAGE)
    again = admin.post(f"{PAGE}/batches/{batch}/apply", data={"csrf_token": token},
                       follow_redirects=True)  # fmt: skip
    assert "applied already" in again.get_data(as_text=True)
    assert len(published(nats_server.url)) == 1


def test_nothing_is_published_when_no_parked_person_is_mapped(app, site, client_as, nats_server):  # type: ignore[no-untyped-def]
    park(app, [("moodle", str(site.users["ben"]), site.courses["Fire Safety"])])
    admin = client_as("admin")
    _, page = apply_file(admin, GOOD)  # maps canvas 101 and moodle 7: nobody parked
    assert "Applied: 2 new" in page and "will be retried" not in page
    assert published(nats_server.url) == []


def test_an_unreachable_bus_is_told_and_the_batch_still_applied(site, tmp_path):  # type: ignore[no-untyped-def]
    gone = EmbeddedNatsServer(tmp_path / "gone").start()
    url = gone.url
    gone.stop()  # nothing listens there any more
    application = make_app(site, tmp_path, url)
    try:
        park(application, [("moodle", "7", site.courses["Fire Safety"])])
        admin = application.test_client()
        assert sign_in(admin, "admin").status_code == 302
        _, page = apply_file(admin, GOOD)
        assert "Applied: 2 new" in page and count(application, IdentityMapping) == 2
        assert (
            "1 parked person can be placed now, but the sync of their 1 course was not "
            "queued" in page
        )
        assert "The next scheduled Classroom sync retries them." in page
    finally:
        application.extensions["manireports"].close()


# --- deleting a mapping ------------------------------------------------------------------------


def mapping_id(app: Flask, source: str, user_id: str) -> int:
    with app.extensions["manireports"].appdb.transaction() as session:
        m = IdentityMapping
        query = select(m.id).where(m.source == source, m.lms_user_id == user_id)
        return int(session.scalars(query).one())


def test_a_mapping_is_deleted_after_a_confirmation_and_audited(app, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    apply_file(admin, GOOD)
    ada = mapping_id(app, "canvas", "101")
    found = admin.get(PAGE, query_string={"source": "canvas", "user_id": "101"})
    delete_url = f"{PAGE}/mappings/{ada}/delete"
    assert f'href="{delete_url}"' in section(found.get_data(as_text=True), "search")
    confirm = admin.get(delete_url).get_data(as_text=True)
    assert "Delete this mapping?" in confirm and "ada@acme.example" in confirm
    assert 'id="confirm-delete"' in confirm
    assert count(app, IdentityMapping) == 2  # asking is not deleting
    done = admin.post(delete_url, data={"csrf_token": csrf_token(admin, delete_url)})
    assert done.status_code == 303 and "source=canvas" in done.headers["Location"]
    after = admin.get(done.headers["Location"]).get_data(as_text=True)
    assert "Deleted the mapping of canvas user 101 to ada@acme.example" in after
    assert "No mapping matches" in after
    assert count(app, IdentityMapping) == 1
    with app.extensions["manireports"].appdb.transaction() as session:
        [entry] = session.scalars(select(AuditLog).where(
            AuditLog.action == "identity_mapping_deleted"))  # fmt: skip
        assert (entry.object_type, entry.object_id) == ("identity_mapping", str(ada))
        assert json.loads(entry.details or "{}") == {"source": "canvas", "lms_user_id": "101",
                                                     "google_email": "ada@acme.example",
                                                     "via": "web"}  # fmt: skip
    # Again: it is gone, said plainly.
    token = csrf_token(admin, PAGE)
    again = admin.post(delete_url, data={"csrf_token": token})
    assert again.status_code == 404 and "deleted already" in again.get_data(as_text=True)
    assert admin.get(delete_url).status_code == 404
    assert admin.post(f"{PAGE}/mappings/0/delete", data={"csrf_token": token}).status_code == 404


def test_deleting_needs_the_csrf_token_and_a_site_admin(app, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    apply_file(admin, GOOD)
    delete_url = f"{PAGE}/mappings/{mapping_id(app, 'moodle', '7')}/delete"
    assert admin.post(delete_url).status_code == 400
    assert admin.post(delete_url, data={"csrf_token": "forged"}).status_code == 400
    before = count(app, AuditLog, AuditLog.action == "access_denied")
    for who in ("mgr_a", "teacher_a", "ana"):
        client = client_as(who)
        assert client.get(delete_url).status_code == 403
        token = csrf_token(client, "/dashboards/")
        assert client.post(delete_url, data={"csrf_token": token}).status_code == 403
    assert count(app, AuditLog, AuditLog.action == "access_denied") == before + 6
    assert count(app, IdentityMapping) == 2
    assert count(app, AuditLog, AuditLog.action == "identity_mapping_deleted") == 0
