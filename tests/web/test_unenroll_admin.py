"""The unenroll policy page: site admins only (every route and method 403 for the others,
audited), CSRF on every form, settings saved with every bad field named (422, input kept),
protected domains and emails added and removed one at a time, and the preview showing who a
run would take, days inactive and why, and the protected people."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from common.models.access import AuditLog
from common.unenroll.policy import SAVED_ACTION, load_policy
from tests.common.unenroll.lab import build_lab
from tests.web.conftest import csrf_token

PAGE = "/admin/unenroll-policy/"
SETTINGS = {
    "enabled": "1",
    "dry_run": "1",
    "grace_days": "7",
    "max_remove_share": "20%",
    "sources": "",
}


@pytest.fixture
def lab(app, site):  # type: ignore[no-untyped-def]
    ctx = app.extensions["manireports"]
    built = build_lab(site, ctx.settings.database_url)  # people seen relative to the app's clock
    yield built
    built.moodle.dispose()
    built.appdb.dispose()


def ctx_policy(app):  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as s:
        return load_policy(s)


def count(app, action: str) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as s:
        return int(s.scalar(select(func.count()).where(AuditLog.action == action)) or 0)


def posts(token: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (PAGE, {**SETTINGS, "csrf_token": token}),
        (PAGE + "protected", {"kind": "domain", "value": "x.example", "csrf_token": token}),
        (PAGE + "protected/remove", {"kind": "domain", "value": "x.example", "csrf_token": token}),
    ]


@pytest.mark.parametrize("who", ["mgr_a", "teacher_a", "ana", "dept_a"])
def test_only_site_admins_reach_any_route(app, lab, client_as, who):  # type: ignore[no-untyped-def]
    client = client_as(who)
    token = csrf_token(client, "/dashboards/")
    before = count(app, "access_denied")
    assert client.get(PAGE).status_code == 403
    assert client.get(PAGE + "unenroll.css").status_code == 403
    for path, data in posts(token):
        assert client.post(path, data=data).status_code == 403, path
    assert count(app, "access_denied") == before + 5
    assert count(app, SAVED_ACTION) == 0 and not ctx_policy(app).enabled


def test_signed_out_visitors_are_sent_to_sign_in(app, lab):  # type: ignore[no-untyped-def]
    response = app.test_client().get(PAGE)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_every_form_needs_the_csrf_token(app, lab, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    for path, data in posts("not-the-token"):
        assert admin.post(path, data=data).status_code == 400, path
        no_token = {k: v for k, v in data.items() if k != "csrf_token"}
        assert admin.post(path, data=no_token).status_code == 400, path
    assert count(app, SAVED_ACTION) == 0 and ctx_policy(app).protected_domains == ()


def test_the_preview_shows_who_why_and_the_protected(app, lab, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    token = csrf_token(admin, PAGE)
    admin.post(
        PAGE + "protected", data={"kind": "domain", "value": "Staff.Example", "csrf_token": token}
    )
    admin.post(
        PAGE + "protected",
        data={"kind": "email", "value": "boss@school.example", "csrf_token": token},
    )
    page = admin.get(PAGE).get_data(as_text=True)
    assert "Unenroll policy" in page and "<strong>Off</strong>" in page
    candidates = page.split('id="candidates-table"')[1].split("</table>")[0]
    assert "Olga Old" in candidates and "Nina Never" in candidates
    assert "Eddy Edge" not in candidates and "Rita Recent" not in candidates
    assert "No access for 12 days (last" in candidates
    assert "Never accessed; enrolled 15 days ago (" in candidates
    assert "Unenroll Lab" in candidates and ">12<" in candidates and ">15<" in candidates
    assert str(lab.users["old"]) not in candidates.replace("12", "")  # names, not ids
    kept = page.split('id="protected-table"')[1].split("</table>")[0]
    assert "Stan Staff" in kept and "protected domain staff.example" in kept
    assert "Bea Boss" in kept and "protected email boss@school.example" in kept
    assert "Stan Staff" not in candidates
    assert admin.get(PAGE + "unenroll.css").mimetype == "text/css"


def test_settings_are_saved_and_audited(app, lab, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    token = csrf_token(admin, PAGE)
    done = admin.post(
        PAGE, data={**SETTINGS, "dry_run": "", "grace_days": "30", "csrf_token": token}
    )
    assert done.status_code == 302
    policy = ctx_policy(app)
    assert (policy.enabled, policy.dry_run, policy.grace_days) == (True, False, 30)
    assert count(app, SAVED_ACTION) == 1
    page = admin.get(PAGE).get_data(as_text=True)
    assert "Live" in page and "None configured" in page
    candidates = page.split('id="candidates-table"')[1].split("</table>")[0]
    assert "Olga Old" not in candidates  # 12 days is inside a 30-day grace period


def test_the_page_names_the_remover_a_live_run_would_use(app, lab, client_as, monkeypatch):  # type: ignore[no-untyped-def]
    admin = client_as("admin")

    def state() -> str:
        page = admin.get(PAGE).get_data(as_text=True)
        return page.split('id="remover-state">')[1].split("</dd>")[0]

    for name in ("UNENROLL_REMOVER", "CLASSROOM_API_ENDPOINT", "CLASSROOM_SERVICE_ACCOUNT_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert "None configured" in state()
    monkeypatch.setenv("CLASSROOM_API_ENDPOINT", "http://127.0.0.1:9/")
    assert "Google Classroom" in state() and "/admin/classroom" in state()
    monkeypatch.delenv("CLASSROOM_API_ENDPOINT")
    monkeypatch.setenv("CLASSROOM_SERVICE_ACCOUNT_FILE", "/nonexistent/key.json")
    assert "cannot be used" in state() and "CLASSROOM_SERVICE_ACCOUNT_FILE" in state()
    monkeypatch.setenv("UNENROLL_REMOVER", "some.module:factory")
    assert "Configured (<code>UNENROLL_REMOVER</code>)" in state()


def test_bad_settings_come_back_with_every_field_named_and_kept(app, lab, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    token = csrf_token(admin, PAGE)
    bad = {**SETTINGS, "grace_days": "9999", "max_remove_share": "150%", "sources": "Bad Name"}
    done = admin.post(PAGE, data={**bad, "csrf_token": token})
    assert done.status_code == 422
    page = done.get_data(as_text=True)
    assert 'value="9999"' in page and 'value="150%"' in page and ">Bad Name</textarea>" in page
    for field in ("grace_days", "max_remove_share", "sources"):
        assert f'id="error-{field}-1"' in page, field
    assert "these 3 problems" in page
    assert count(app, SAVED_ACTION) == 0 and not ctx_policy(app).enabled


def test_protected_entries_are_added_and_removed(app, lab, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    token = csrf_token(admin, PAGE)
    added = admin.post(
        PAGE + "protected", data={"kind": "email", "value": "Head@Example.com", "csrf_token": token}
    )
    assert added.status_code == 302
    assert ctx_policy(app).protected_emails == ("head@example.com",)
    bad = admin.post(
        PAGE + "protected", data={"kind": "email", "value": "not an address", "csrf_token": token}
    )
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert 'value="not an address"' in page and 'id="error-protected_emails-1"' in page
    removed = admin.post(
        PAGE + "protected/remove",
        data={"kind": "email", "value": "head@example.com", "csrf_token": token},
    )
    assert removed.status_code == 302 and ctx_policy(app).protected_emails == ()
    assert (
        admin.post(
            PAGE + "protected", data={"kind": "phone", "value": "1", "csrf_token": token}
        ).status_code
        == 400
    )
    with app.extensions["manireports"].appdb.transaction() as s:
        details = [
            json.loads(d)
            for d in s.scalars(select(AuditLog.details).where(AuditLog.action == SAVED_ACTION))
        ]
    assert len(details) == 2 and all(d["via"] == "web" for d in details)


def test_a_save_keeps_the_protected_lists(app, lab, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    token = csrf_token(admin, PAGE)
    admin.post(
        PAGE + "protected", data={"kind": "domain", "value": "keep.example", "csrf_token": token}
    )
    admin.post(PAGE, data={**SETTINGS, "csrf_token": token})
    assert ctx_policy(app).protected_domains == ("keep.example",)


def test_the_page_says_when_a_live_run_would_stop(app, lab, client_as):  # type: ignore[no-untyped-def]
    admin = client_as("admin")
    token = csrf_token(admin, PAGE)
    # Unprotected, Stan and Bea are candidates too: 4 of the lab's 10 is over 20%.
    assert "4 of 10 people in Unenroll Lab" in admin.get(PAGE).get_data(as_text=True)
    for kind, value in (("domain", "staff.example"), ("email", "boss@school.example")):
        admin.post(PAGE + "protected", data={"kind": kind, "value": value, "csrf_token": token})
    assert "Within the limit (20%" in admin.get(PAGE).get_data(as_text=True)
    admin.post(PAGE, data={**SETTINGS, "max_remove_share": "0.1", "csrf_token": token})
    page = admin.get(PAGE).get_data(as_text=True)
    assert "A live run now would stop" in page
    assert "2 of 10 people in Unenroll Lab would be removed" in page


def zeta_course(site, inactive: int, active: int) -> None:  # type: ignore[no-untyped-def]
    """A course after the lab (by name) with ``inactive`` people unseen for 30 days."""
    from tests.common.unenroll.lab import seen
    from tests.factories.sites import DAY, NOW

    course = site.moodle.course(fullname="Zeta Course")
    for n in range(inactive + active):
        user = site.moodle.user(username=f"zeta{n:03d}", firstname="Zed", lastname=f"Z{n:03d}",
                                email=f"z{n:03d}@zeta.example")  # fmt: skip
        site.moodle.enrol(user, course, timestart=NOW - 40 * DAY)
        seen(site, user, course, NOW - (30 if n < inactive else 1) * DAY)


def rows_of(page: str, table: str) -> list[str]:
    body = page.split(f'id="{table}"')[1].split("</table>")[0]
    return re.findall(r'<th scope="row">([^<]*)</th>', body)


def test_the_preview_is_paged_and_the_share_limit_counts_every_page(app, lab, site, client_as):  # type: ignore[no-untyped-def]
    zeta_course(site, inactive=130, active=20)
    admin = client_as("admin")
    token = csrf_token(admin, PAGE)
    for kind, value in (("domain", "staff.example"), ("email", "boss@school.example")):
        admin.post(PAGE + "protected", data={"kind": kind, "value": value, "csrf_token": token})
    first = admin.get(PAGE).get_data(as_text=True)
    # 2 from the lab (Olga, Nina) and 130 from Zeta, by course name then person.
    assert 'Who a run would remove now <span class="small muted">(132)' in first
    assert "132 people would be removed and 2 kept as protected" in first
    names = rows_of(first, "candidates-table")
    assert len(names) == 100 and names[:2] == ["Nina Never", "Olga Old"]
    assert names[-1] == "Zed Z097" and "Page 1 of 2 (1–100 of 132)" in first
    # Judged over all 130 Zeta candidates, not the 98 of this page.
    assert "130 of 150 people in Zeta Course would be removed" in first
    second = admin.get(PAGE, query_string={"page": "2"}).get_data(as_text=True)
    names = rows_of(second, "candidates-table")
    assert names[0] == "Zed Z098" and names[-1] == "Zed Z129" and len(names) == 32
    assert "Page 2 of 2 (101–132 of 132)" in second and 'rel="next"' not in second
    assert "130 of 150 people in Zeta Course would be removed" in second
    assert 'href="/admin/unenroll-policy/?page=1#candidates"' in second
    assert rows_of(admin.get(PAGE, query_string={"page": "9"}).get_data(as_text=True),
                   "candidates-table")[0] == "Nina Never"  # fmt: skip

    # Protecting Zeta's domain moves its people to the protected list, paged on its own.
    admin.post(PAGE + "protected", data={"kind": "domain", "value": "zeta.example",
                                         "csrf_token": token})  # fmt: skip
    page = admin.get(PAGE, query_string={"protected_page": "2", "page": "1"}).get_data(
        as_text=True)  # fmt: skip
    assert rows_of(page, "candidates-table") == ["Nina Never", "Olga Old"]
    kept = rows_of(page, "protected-table")
    assert len(kept) == 32 and kept[-1] == "Zed Z129"
    assert "Page 2 of 2 (101–132 of 132)" in page and "Within the limit" in page
    assert (
        "page=1&amp;protected_page=1#protected" in page
        or "protected_page=1&amp;page=1#protected" in page
    )
