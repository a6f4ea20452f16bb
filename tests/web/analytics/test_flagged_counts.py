"""One truth for "flagged": the overview counts exactly the rows the at-risk list pages
through, for every kind of viewer, right after the first aggregation — and says "not yet"
(never 0) before the first scoring run."""

from sqlalchemy import func, select

from common.analytics.caches import refresh_caches
from common.models.analytics import Engagement, RiskScore
from services.aggregator.jobs import Jobs
from tests.factories.sites import NOW
from tests.web.analytics.pages import cells, kpi, total_rows


def first_aggregation(app):  # type: ignore[no-untyped-def]
    ctx = app.extensions["manireports"]
    Jobs(ctx.settings, ctx.appdb, ctx.moodle).preaggregate(NOW)


def test_the_overview_counts_what_the_at_risk_list_lists_for_every_viewer(app, site, client_as):
    first_aggregation(app)
    with app.extensions["manireports"].appdb.transaction() as db:
        everyone = db.scalar(select(func.count()).where(RiskScore.flagged.is_(True)))
    seen = {}
    for who in ("admin", "mgr_a", "mgr_b", "teacher_a", "dept_a", "rep_b"):
        client = client_as(who)
        overview = client.get("/analytics/").get_data(as_text=True)
        listed = total_rows(client.get("/analytics/at-risk").get_data(as_text=True))
        shown = int(kpi(overview, "flagged").replace(",", ""))
        assert shown == listed, who
        # The course table adds up to the same figure (flagged learners with no activity in
        # 30 days count in their course too).
        by_course = sum(int(row[-1]) for row in cells(overview, "course-table") if row[-1] != "–")
        assert by_course == listed, who
        seen[who] = listed
    assert seen["admin"] == everyone > 0
    # Nobody in the demo site has logged in: each active enrolment of a company's learners
    # in a course the company sees is flagged. Acme: ana x3, ben x2, cara x1 (her First Aid
    # enrolment is suspended), dan x1; Bolt: yuri x2, zoe x2, xena x1.
    assert (seen["mgr_a"], seen["mgr_b"], seen["rep_b"]) == (7, 5, 5)
    assert seen["dept_a"] == 5  # Acme Sales and below: ana and ben
    assert seen["teacher_a"] == 2  # First Aid: ana and ben


def test_before_the_first_scoring_the_overview_says_not_yet_instead_of_zero(app, site, client_as):
    ctx = app.extensions["manireports"]
    with ctx.appdb.transaction() as db:
        fire = site.courses["Fire Safety"]
        db.add(Engagement(userid=site.users["ana"], courseid=fire, active_days_7=1,
                          active_days_30=2, seconds_7=600, seconds_30=4200))  # fmt: skip
    refresh_caches(ctx.appdb, ctx.moodle, ttl_s=600, now=NOW)  # a cache, but no scores
    page = client_as("mgr_a").get("/analytics/").get_data(as_text=True)
    assert kpi(page, "flagged") == "not yet"
    assert "have not been computed yet" in page
    assert cells(page, "course-table") == [["Fire Safety", "1", "1", "1 h 10 min", "–"]]
    at_risk = client_as("mgr_a").get("/analytics/at-risk").get_data(as_text=True)
    assert "have not been computed yet" in at_risk
