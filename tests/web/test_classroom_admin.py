"""The Google Classroom admin page on the two-company site, with a nats-server of its own:
site administrators only, CSRF on every form; the key uploaded, stored encrypted and never
shown (only its service account's address), a bad key refused with the reason and the other
input kept; the course mapping added and removed by Moodle course name (audited); "Sync now"
publishing exactly one `classroom_sync` task command; the last syncs from their audit events."""

from __future__ import annotations

import io
import json
import re

import pytest

from common.audit import record_audit
from common.classroom.config import stored_courses
from common.models.classroom import SETTINGS_ROW, ClassroomConfig
from common.secrets import decrypt
from tests.common.classroom.test_client import service_account_info
from tests.support import TEST_SECRET
from tests.web import bus_commands
from tests.web.app_rows import appdb, audits, stored_row
from tests.web.bus_commands import published
from tests.web.conftest import csrf_token

nats_server = bus_commands.nats_server  # a server of each test's own
PAGE = "/admin/classroom/"
ENV = ("CLASSROOM_SERVICE_ACCOUNT_FILE", "CLASSROOM_ADMIN_EMAIL", "CLASSROOM_API_ENDPOINT",
       "CLASSROOM_COURSE_MAP")  # fmt: skip


@pytest.fixture(autouse=True)
def no_classroom_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def stored(app) -> ClassroomConfig | None:  # type: ignore[no-untyped-def]
    return stored_row(app, ClassroomConfig, SETTINGS_ROW)


def mapping(app) -> dict[int, str]:  # type: ignore[no-untyped-def]
    with appdb(app).transaction() as db:
        return stored_courses(db)


def post(client, path: str, **data):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf_token(client, PAGE), **data})


def upload(client, content: bytes, name: str = "key.json"):  # type: ignore[no-untyped-def]
    return client.post(f"{PAGE}key", content_type="multipart/form-data",
                       data={"csrf_token": csrf_token(client, PAGE),
                             "key": (io.BytesIO(content), name)})  # fmt: skip


@pytest.mark.parametrize("username", ["mgr_a", "dept_a", "teacher_a", "ana"])
def test_anyone_but_a_site_admin_is_refused(app, site, client_as, nats_server, username):  # type: ignore[no-untyped-def]
    client = client_as(username)
    token = csrf_token(client, "/dashboards/")
    assert client.get(PAGE).status_code == 403
    course = site.courses["Fire Safety"]
    for path, data in ((f"{PAGE}key", {}), (f"{PAGE}admin-email", {"admin_email": "a@b.example"}),
                       (f"{PAGE}courses", {"moodle_course_id": course, "classroom_course_id": "1"}),
                       (f"{PAGE}courses/remove", {"moodle_course_id": course}),
                       (f"{PAGE}sync", {})):  # fmt: skip
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 403, path
    assert stored(app) is None and mapping(app) == {}
    assert published(nats_server.url) == []
    assert "Google Classroom" not in client.get("/dashboards/").get_data(as_text=True)


def test_the_menu_shows_the_page_to_a_site_admin(client_as):  # type: ignore[no-untyped-def]
    page = client_as("admin").get("/dashboards/").get_data(as_text=True)
    assert f'href="{PAGE}"' in page and "Google Classroom" in page


def test_every_form_needs_its_csrf_token(app, site, client_as, nats_server):  # type: ignore[no-untyped-def]
    client = client_as("admin")
    course = site.courses["Fire Safety"]
    for path, data in ((f"{PAGE}admin-email", {"admin_email": "a@b.example"}),
                       (f"{PAGE}courses", {"moodle_course_id": course, "classroom_course_id": "1"}),
                       (f"{PAGE}sync", {})):  # fmt: skip
        assert client.post(path, data=data).status_code == 400, path
        assert client.post(path, data={**data, "csrf_token": "forged"}).status_code == 400, path
    forged = client.post(f"{PAGE}key", content_type="multipart/form-data",
                         data={"key": (io.BytesIO(json.dumps(service_account_info()).encode()),
                                       "key.json")})  # fmt: skip
    assert forged.status_code == 400
    assert stored(app) is None and mapping(app) == {} and published(nats_server.url) == []


def test_the_key_is_stored_encrypted_and_never_shown(app, client_as):  # type: ignore[no-untyped-def]
    client = client_as("admin")
    first = client.get(PAGE).get_data(as_text=True)
    assert "None stored" in first and "No syncs yet." in first
    # A key id no random token on the page can contain by chance (the CSRF token is base64).
    info = {**service_account_info(), "private_key_id": "key-id-never-shown"}
    response = upload(client, json.dumps(info).encode())
    assert response.status_code == 302
    row = stored(app)
    assert row is not None and row.key_client_email == info["client_email"]
    secret_part = info["private_key"].splitlines()[1]
    assert secret_part not in row.secrets and "PRIVATE KEY" not in row.secrets
    assert json.loads(decrypt(row.secrets, TEST_SECRET)) == info
    page = client.get(PAGE).get_data(as_text=True)
    assert f"Stored: the key of <strong>{info['client_email']}</strong>" in page
    assert secret_part not in page and "PRIVATE KEY" not in page
    assert "key-id-never-shown" not in page
    [event] = audits(app, "classroom_key_saved")
    assert secret_part not in (event.details or "")
    # The audit log page does not show it either.
    assert secret_part not in client.get("/admin/audit/").get_data(as_text=True)


def test_a_bad_key_is_refused_with_the_reason_and_the_stored_one_kept(app, client_as):  # type: ignore[no-untyped-def]
    client = client_as("admin")
    good = service_account_info()
    upload(client, json.dumps(good).encode())
    bad = {**good, "type": "authorized_user"}
    response = upload(client, json.dumps(bad).encode())
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "not a service account key" in page and 'href="#key"' in page
    assert good["private_key"].splitlines()[1] not in page
    response = upload(client, b"not json at all")
    assert response.status_code == 422 and "not a JSON file" in response.get_data(as_text=True)
    row = stored(app)
    assert row is not None and json.loads(decrypt(row.secrets, TEST_SECRET)) == good
    assert len(audits(app, "classroom_key_saved")) == 1


def test_the_admin_email_is_checked_and_the_input_kept(app, client_as):  # type: ignore[no-untyped-def]
    client = client_as("admin")
    response = post(client, f"{PAGE}admin-email", admin_email="not an address")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and 'value="not an address"' in page
    assert stored(app) is None
    assert post(client, f"{PAGE}admin-email", admin_email="it@school.example").status_code == 302
    assert stored(app).admin_email == "it@school.example"  # type: ignore[union-attr]
    assert len(audits(app, "classroom_settings_saved")) == 1


def test_courses_are_mapped_and_unmapped_by_name(app, site, client_as):  # type: ignore[no-untyped-def]
    client = client_as("admin")
    course = site.courses["Fire Safety"]
    page = client.get(PAGE + "?q=fire").get_data(as_text=True)
    assert re.search(rf'<option value="{course}"[^>]*>Fire Safety', page)
    assert "Forklift" not in page.split('id="moodle_course_id"')[1].split("</select>")[0]
    response = post(client, f"{PAGE}courses", moodle_course_id=str(course),
                    classroom_course_id="bad id!", q="fire")  # fmt: skip
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Classroom course id" in page
    assert re.search(rf'<option value="{course}" selected>', page)
    assert 'value="bad id!"' in page and mapping(app) == {}
    both = post(client, f"{PAGE}courses", moodle_course_id="", classroom_course_id="")
    assert both.status_code == 422
    assert 'href="#moodle_course_id"' in both.get_data(as_text=True)
    assert 'href="#classroom_course_id"' in both.get_data(as_text=True)
    response = post(client, f"{PAGE}courses", moodle_course_id=str(course),
                    classroom_course_id="555000111")  # fmt: skip
    assert response.status_code == 302
    assert mapping(app) == {course: "555000111"}
    page = client.get(PAGE).get_data(as_text=True)
    table = page.split('id="courses-table"')[1].split("</table>")[0]
    assert "Fire Safety" in table and "555000111" in table
    again = post(client, f"{PAGE}courses", moodle_course_id=str(course), classroom_course_id="2")
    assert again.status_code == 422 and "already mapped to 555000111" in again.get_data(
        as_text=True
    )
    assert post(client, f"{PAGE}courses", moodle_course_id="999999",
                classroom_course_id="2").status_code == 422  # fmt: skip
    assert post(client, f"{PAGE}courses/remove", moodle_course_id=str(course)).status_code == 302
    assert mapping(app) == {}
    added, removed = (
        audits(app, "classroom_course_mapped"),
        audits(app, "classroom_course_unmapped"),
    )
    assert [json.loads(e.details or "{}")["course"] for e in added + removed] == [
        "Fire Safety", "Fire Safety"]  # fmt: skip


def test_pairs_from_the_environment_are_listed_and_not_removable(app, site, client_as,
                                                                  monkeypatch):  # type: ignore[no-untyped-def]  # fmt: skip
    course = site.courses["Fire Safety"]
    monkeypatch.setenv("CLASSROOM_COURSE_MAP", f"{course}=env-course")
    page = client_as("admin").get(PAGE).get_data(as_text=True)
    table = page.split('id="courses-table"')[1].split("</table>")[0]
    assert "Fire Safety" in table and "env-course" in table and "CLASSROOM_COURSE_MAP" in table
    assert "Remove" not in table


def test_sync_now_publishes_exactly_one_task_command(app, site, client_as, nats_server):  # type: ignore[no-untyped-def]
    client = client_as("admin")
    response = post(client, f"{PAGE}sync")
    assert response.status_code == 302 and response.location.endswith(f"{PAGE}#syncs")
    [(subject, msg_id, payload)] = published(nats_server.url)
    assert subject == "mr.cmd.sync.classroom"
    assert payload == {"task": "classroom_sync", "trigger": "manual",
                       "startedby": site.users["admin"]}  # fmt: skip
    assert re.fullmatch(r"classroom:manual:[0-9a-f]{12}", msg_id)
    assert "Queued: the Classroom sync starts shortly" in client.get(PAGE).get_data(as_text=True)
    [event] = audits(app, "classroom_sync_now")
    assert (event.userid, event.outcome) == (site.users["admin"], "success")


def test_the_last_syncs_come_from_their_audit_events(app, client_as):  # type: ignore[no-untyped-def]
    details = {"trigger": "schedule", "courses": [7, 8], "added": 3, "invited": 1, "removed": 2,
               "unchanged": 5, "parked": 4, "removals_held": [8], "error_count": 1,
               "errors": [{"course_id": 7, "email": "x@school.example",
                           "error": "courses.students.create: 403 PERMISSION_DENIED"}]}  # fmt: skip
    with appdb(app).transaction() as db:
        record_audit(db, actor_id=None, action="classroom_sync", object_type="classroom",
                     outcome="failed", details=details)  # fmt: skip
    page = client_as("admin").get(PAGE).get_data(as_text=True)
    table = page.split('id="syncs-table"')[1].split("</table>")[0]
    assert "2 courses: 3 added, 1 invited, 2 removed, 5 unchanged" in table
    assert 'href="/admin/identity-mapping' in table and ">4</a>" in table
    assert "1 failed" in table and "403 PERMISSION_DENIED" in table
