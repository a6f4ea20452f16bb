"""The security probe's findings on tenancy, each reproduced as it was attacked and held.

Finding 1: a manager of company A who is a plain member of company B acted on B's email.
Finding 4: the analytics overview ignored course limits (a teacher saw the company trend).
Finding 5: department managers saw the whole company.
Finding 8: odd numbers answered 500 (each URL the probe used).
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from common.analytics.caches import refresh_caches
from common.models.analytics import Engagement
from common.models.api import ApiToken
from common.models.mail import CloudConf, CloudJob
from tests.web.conftest import csrf_token
from tests.web.other_company import build_bolt_objects

HUGE = "99999999999999999999999"


def count(app, model) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_finding_1_membership_alone_gives_no_hold_on_another_companys_email(app, site, client_as):
    bolt = build_bolt_objects(app, site)
    client = client_as("mgr_a_in_b")
    b = site.companies["B"]
    assert client.get(f"/jobs/?company={b}").status_code == 403
    assert client.get(f"/jobs/view?job={bolt.job}").status_code == 403
    assert client.get(f"/admin/email-offload/?company={b}").status_code == 403
    token = csrf_token(client, "/dashboards/")
    jobs, configs = count(app, CloudJob), count(app, CloudConf)
    created = client.post(f"/jobs/create?company={b}", data={
        "csrf_token": token, "subject": "Hi", "html": "<p>Hi</p>",
        "recipients": "someone@acme.example"})  # fmt: skip
    assert created.status_code == 403
    saved = client.post(f"/admin/email-offload/?company={b}", data={
        "csrf_token": token, "provider": "smtp", "sender_email": "x@acme.example",
        "chunk_size": "100", "smtp__host": "smtp.acme.example"})  # fmt: skip
    assert saved.status_code == 403
    assert (count(app, CloudJob), count(app, CloudConf)) == (jobs, configs)
    tokens = count(app, ApiToken)
    form = {"csrf_token": token, "name": "takeover", "company": str(b), "scopes": "email:write"}
    minted = client.post("/admin/api-tokens/", data=form)
    assert minted.status_code == 403
    assert count(app, ApiToken) == tokens
    # Their own company stays theirs to manage.
    assert client.get(f"/jobs/?company={site.companies['A']}").status_code == 200


def test_finding_4_the_overview_shows_a_trend_only_to_whole_company_scopes(app, site, client_as):
    ctx = app.extensions["manireports"]
    first_aid, forklift = site.courses["First Aid"], site.courses["Forklift"]
    with ctx.appdb.transaction() as db:
        for user, course in (("ana", first_aid), ("ben", first_aid), ("yuri", forklift)):
            db.add(Engagement(userid=site.users[user], courseid=course, active_days_7=1,
                              active_days_30=2, seconds_7=600, seconds_30=1200))  # fmt: skip
    refresh_caches(ctx.appdb, ctx.moodle, ttl_s=3600, now=int(ctx.clock()))
    manager = client_as("mgr_a").get("/analytics/").get_data(as_text=True)
    assert "Last 12 months" in manager and "First Aid" in manager
    teacher = client_as("teacher_a").get("/analytics/").get_data(as_text=True)
    assert "Last 12 months" not in teacher and "First Aid" in teacher
    assert "Forklift" not in teacher
    member = client_as("mgr_a_in_b").get(f"/analytics/?company={site.companies['B']}")
    assert member.status_code == 200
    assert "Last 12 months" not in member.get_data(as_text=True)
    assert "Forklift" not in member.get_data(as_text=True)
    solo = client_as("teacher_solo").get("/analytics/").get_data(as_text=True)
    assert "Last 12 months" not in solo and "Forklift" not in solo


def test_finding_5_department_managers_see_their_department_subtree(site, client_as):
    data = client_as("dept_a").get("/reports/course_completion/data?days=90").get_json()
    enrolled = {row["course"]: row["enrolled"] for row in data["rows"]}
    # Sales (ana) and Sales North (ben) only; Ops (cara, dan) is out of sight.
    # Every course of the company is listed, those without their learners at zero.
    assert enrolled == {"Fire Safety": 2, "First Aid": 2, "Shared Ethics": 1,
                        "Induction (no learners yet)": 0}  # fmt: skip
    page = client_as("dept_a").get("/analytics/at-risk").get_data(as_text=True)
    assert "Cara Learner" not in page and "Dan Learner" not in page


def test_finding_8_odd_numbers_are_refused_not_500(app, site, client_as):
    admin = client_as("admin")
    for path in (
        "/jobs/view?job=²", f"/admin/audit/?page={HUGE}", f"/analytics/scorm/{HUGE}",
        f"/dashboards/completion?company={HUGE}", "/analytics/scorm/٣",
    ):  # fmt: skip
        assert admin.get(path).status_code in (400, 404), path
    token = csrf_token(admin, "/dashboards/")
    assert admin.post("/admin/api-tokens/revoke", data={"token": "²", "csrf_token": token}
                      ).status_code == 400  # fmt: skip
    callback = app.test_client().post("/callbacks/cloud", data=b"{}",
                                      headers={"X-ManiReports-Company": "²"})  # fmt: skip
    assert callback.status_code in (400, 401)
    # A manager asking for an absurd company gets an audited 403, not a failed audit write.
    manager = client_as("mgr_a")
    assert manager.get(f"/dashboards/completion?company={HUGE}").status_code == 400
    assert re.search(r"company", manager.get(f"/dashboards/completion?company={HUGE}")
                     .get_data(as_text=True))  # fmt: skip


def test_a_site_admin_cannot_work_on_a_company_that_does_not_exist(app, client_as):
    admin = client_as("admin")
    for path in ("/jobs/?company=999", "/admin/email-offload/?company=999",
                 "/dashboards/completion?company=999"):  # fmt: skip
        assert admin.get(path).status_code == 404, path
    token = csrf_token(admin, "/dashboards/")
    jobs = count(app, CloudJob)
    created = admin.post("/jobs/create?company=999", data={
        "csrf_token": token, "subject": "Hi", "html": "<p>Hi</p>",
        "recipients": "someone@acme.example"})  # fmt: skip
    assert created.status_code == 404 and count(app, CloudJob) == jobs
