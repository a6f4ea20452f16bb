"""Analytics pages name learners and courses (never their ids) and link them to their pages,
and a long SCORM attempt is paged SCO by SCO."""

import re

import pytest

from common.analytics.caches import refresh_caches
from common.analytics.risk import compute_risk_scores
from common.analytics.scorm import update_scorm_summary
from common.models.analytics import Engagement
from tests.factories.sites import NOW
from tests.web.analytics.pages import cells, page_range


def user_link(site, name: str, username: str) -> str:
    return f'<a href="/users/{site.users[username]}">{name}</a>'


def course_link(site, name: str) -> str:
    return f'<a href="/courses/{site.courses[name]}">{name}</a>'


def numbers_shown(html: str, table_id: str, columns: int = 2) -> set[str]:
    """Cells that are a bare number among the first columns (the names: learner, course)."""
    return {c for row in cells(html, table_id) for c in row[:columns] if c.isdigit()}


@pytest.fixture
def long_attempt(app, site):  # type: ignore[no-untyped-def]
    """Ana's one attempt at a two-SCO package in Fire Safety: 60 elements in the first SCO
    ("Lesson"), 5 in the second ("Final quiz")."""
    moodle = site.moodle
    package = moodle.scorm(site.courses["Fire Safety"], name="Long package")
    quiz_sco = moodle.insert("scorm_scoes", scorm=package.instance, organization="ORG-1",
                             parent="ORG-1", identifier="SCO-2", launch="quiz.html",
                             scormtype="sco", title="Final quiz", sortorder=2)  # fmt: skip
    ana = site.users["ana"]
    for n in range(60):
        moodle.scorm_track(ana, package, f"cmi.interactions.{n:02d}.id", f"q{n}")
    quiz = package._replace(sco_id=quiz_sco)
    for n in range(5):
        moodle.scorm_track(ana, quiz, f"cmi.objectives.{n}.id", f"goal{n}")
    ctx = app.extensions["manireports"]
    update_scorm_summary(ctx.appdb, ctx.moodle, full=True)
    return package.instance


def test_at_risk_names_and_links_learners_and_courses(app, site, client_as):
    ctx = app.extensions["manireports"]
    compute_risk_scores(ctx.appdb, ctx.moodle, now=NOW, flag_score=50)
    page = client_as("mgr_a").get("/analytics/at-risk").get_data(as_text=True)
    assert user_link(site, "Ana Learner", "ana") in page
    assert course_link(site, "Fire Safety") in page
    assert not numbers_shown(page, "at-risk-table")


def test_overview_links_each_course_to_its_page(app, site, client_as):
    ctx = app.extensions["manireports"]
    with ctx.appdb.transaction() as db:
        fire = site.courses["Fire Safety"]
        db.add(Engagement(userid=site.users["ana"], courseid=fire, active_days_7=1,
                          active_days_30=2, seconds_7=600, seconds_30=4200))  # fmt: skip
    refresh_caches(ctx.appdb, ctx.moodle, ttl_s=600, now=NOW)
    page = client_as("mgr_a").get("/analytics/").get_data(as_text=True)
    rows = cells(page, "course-table")
    assert "Fire Safety" in {r[0] for r in rows}
    assert course_link(site, "Fire Safety") in page
    assert not numbers_shown(page, "course-table", columns=1)


def test_scorm_pages_link_the_course_and_the_learner(site, long_attempt, client_as):
    client = client_as("mgr_a")
    activities = client.get("/analytics/scorm").get_data(as_text=True)
    assert course_link(site, "Fire Safety") in activities
    activity = client.get(f"/analytics/scorm/{long_attempt}").get_data(as_text=True)
    assert user_link(site, "Ana Learner", "ana") in activity
    assert course_link(site, "Fire Safety") in activity
    attempt = client.get(f"/analytics/scorm/{long_attempt}/learner/{site.users['ana']}/attempt/1")
    body = attempt.get_data(as_text=True)
    assert re.search(rf"<h1>{re.escape(user_link(site, 'Ana Learner', 'ana'))}: attempt 1</h1>",
                     body)  # fmt: skip
    assert course_link(site, "Fire Safety") in body


def elements(html: str) -> list[str]:
    return [r[0] for r in cells(html, "element-table") if len(r) == 2]


def scos(html: str) -> list[str]:
    return [r[0] for r in cells(html, "element-table") if len(r) == 1]


def test_a_long_attempt_is_paged_in_package_order(site, long_attempt, client_as):
    client = client_as("mgr_a")
    url = f"/analytics/scorm/{long_attempt}/learner/{site.users['ana']}/attempt/1"
    first = client.get(url).get_data(as_text=True)
    assert page_range(first) == (1, 50, 65)
    assert scos(first) == ["Lesson"]
    assert elements(first)[0] == "cmi.interactions.00.id" and len(elements(first)) == 50
    last = client.get(f"{url}?page=2").get_data(as_text=True)
    assert page_range(last) == (51, 65, 65)
    # The first SCO carries on from page 1; the second starts here.
    assert scos(last) == ["Lesson (continued)", "Final quiz"]
    assert elements(last)[:2] == ["cmi.interactions.50.id", "cmi.interactions.51.id"]
    assert elements(last)[-1] == "cmi.objectives.4.id"
    small = client.get(f"{url}?page_size=25&page=3").get_data(as_text=True)
    assert page_range(small) == (51, 65, 65)
    past = client.get(f"{url}?page=9").get_data(as_text=True)
    assert "past the last page (2)" in past and elements(past) == []
    for odd in ("page=0", "page_size=x", "sort=element", "sort=value", "dir=up"):
        response = client.get(f"{url}?{odd}")
        assert response.status_code == 400, odd
        assert odd.split("=")[0] in response.get_data(as_text=True)


def test_an_attempt_with_no_tracking_says_so(site, long_attempt, client_as):
    url = f"/analytics/scorm/{long_attempt}/learner/{site.users['ana']}/attempt/7"
    body = client_as("mgr_a").get(url).get_data(as_text=True)
    assert "No tracking is stored for this attempt." in body
    assert 'id="element-table"' not in body
