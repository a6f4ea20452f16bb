"""SCORM pages: activities and learners in scope, and the drill-down to one attempt's SCO
tracking, which another company's manager cannot open (403, audited)."""

import pytest
from sqlalchemy import select

from common.analytics.scorm import update_scorm_summary
from common.models.access import AuditLog


@pytest.fixture
def scorm(app, site):  # type: ignore[no-untyped-def]
    """A package in Acme's Fire Safety (Ana, two attempts) and one in Bolt's Forklift (Yuri)."""
    moodle = site.moodle
    fire = moodle.scorm(site.courses["Fire Safety"], name="Evacuation drill")
    fork = moodle.scorm(site.courses["Forklift"], name="Pallet handling")
    for element, value, attempt in (("cmi.core.lesson_status", "failed", 1),
                                    ("cmi.core.score.raw", "40", 1),
                                    ("cmi.core.lesson_status", "passed", 2),
                                    ("cmi.core.score.raw", "<b>85</b>", 2)):  # fmt: skip
        moodle.scorm_track(site.users["ana"], fire, element, value, attempt=attempt)
    moodle.scorm_track(site.users["yuri"], fork, "cmi.core.lesson_status", "completed")
    ctx = app.extensions["manireports"]
    update_scorm_summary(ctx.appdb, ctx.moodle, full=True)
    return {"fire": fire.instance, "fork": fork.instance}


def test_a_manager_drills_down_from_activity_to_one_attempt(site, scorm, client_as):
    client = client_as("mgr_a")
    activities = client.get("/analytics/scorm").get_data(as_text=True)
    assert "Evacuation drill" in activities and "Pallet handling" not in activities
    activity = client.get(f"/analytics/scorm/{scorm['fire']}").get_data(as_text=True)
    ana = site.users["ana"]
    link = f"/analytics/scorm/{scorm['fire']}/learner/{ana}/attempt/2"
    assert "Ana Learner" in activity and link in activity
    attempt = client.get(link)
    body = attempt.get_data(as_text=True)
    assert attempt.status_code == 200
    assert "Lesson" in body and "cmi.core.lesson_status" in body and "passed" in body
    assert "&lt;b&gt;85&lt;/b&gt;" in body and "<b>85</b>" not in body  # package data escaped


def test_another_companys_attempt_is_refused_and_audited(app, site, scorm, client_as):
    client = client_as("mgr_a")
    yuri = site.users["yuri"]
    assert client.get(f"/analytics/scorm/{scorm['fork']}").status_code == 403
    assert (
        client.get(f"/analytics/scorm/{scorm['fork']}/learner/{yuri}/attempt/1").status_code == 403
    )
    # Bolt's learner through an Acme activity: refused on the learner.
    assert (
        client.get(f"/analytics/scorm/{scorm['fire']}/learner/{yuri}/attempt/1").status_code == 403
    )
    assert client.get("/analytics/scorm/999999").status_code == 404
    with app.extensions["manireports"].appdb.transaction() as db:
        denied = db.scalars(select(AuditLog).where(AuditLog.action == "access_denied")).all()
    assert len([d for d in denied if "/analytics/scorm/" in d.object_id]) == 3
    assert client_as("ana").get("/analytics/scorm").status_code == 403


def test_an_admin_sees_every_company_and_a_teacher_only_their_courses(site, scorm, client_as):
    page = client_as("admin").get("/analytics/scorm").get_data(as_text=True)
    assert "Evacuation drill" in page and "Pallet handling" in page
    teacher = client_as("teacher_a")  # teaches First Aid only
    assert "Evacuation drill" not in teacher.get("/analytics/scorm").get_data(as_text=True)
    assert teacher.get(f"/analytics/scorm/{scorm['fire']}").status_code == 403
