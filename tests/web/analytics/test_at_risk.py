"""The at-risk dashboard: scores computed on the two-company site, scoped views, audited
acknowledgements; the cached overview says how fresh it is."""

from sqlalchemy import select

from common.analytics.caches import refresh_caches
from common.analytics.risk import compute_risk_scores
from common.analytics.risk_rules import save_rule
from common.models.access import AuditLog
from common.models.analytics import RiskAck, RiskScore
from tests.factories.sites import NOW
from tests.web.conftest import csrf_token


def scores(app):
    ctx = app.extensions["manireports"]
    compute_risk_scores(ctx.appdb, ctx.moodle, now=NOW, flag_score=50)
    with ctx.appdb.transaction() as db:
        return {(r.userid, r.courseid): r for r in db.scalars(select(RiskScore))}


def test_learners_who_never_came_are_flagged_with_their_factors(app, site):
    found = scores(app)
    ana_fire = found[(site.users["ana"], site.courses["Fire Safety"])]
    # No login, no time, no course access, no active day; no tracked activities: 75 of 100.
    assert ana_fire.score == 75 and ana_fire.flagged
    assert (site.users["cara"], site.courses["First Aid"]) not in found  # suspended enrolment
    assert all(user != site.users["gone"] for user, _ in found)  # deleted user


def test_company_rules_replace_site_rules_for_their_learners(app, site):
    ctx = app.extensions["manireports"]
    with ctx.appdb.transaction() as db:
        save_rule(db, actor_id=2, company_id=site.companies["B"], ruletype="max_days_since_login",
                  threshold=7, weight=0, enabled=False)  # fmt: skip
    found = scores(app)
    # Company B's learners lose the 20 login points: 55 of 80 points -> 69.
    assert found[(site.users["yuri"], site.courses["Forklift"])].score == 69
    assert found[(site.users["ana"], site.courses["Fire Safety"])].score == 75
    with ctx.appdb.transaction() as db:
        assert db.scalars(select(AuditLog.action)).all()[-1] == "risk_rule_saved"


def test_a_manager_sees_and_acknowledges_only_their_company(app, site, client_as):
    scores(app)
    client = client_as("mgr_a")
    page = client.get("/analytics/at-risk").get_data(as_text=True)
    assert "Ana Learner" in page and "Fire Safety" in page
    assert "Yuri" not in page and "Forklift" not in page
    token = csrf_token(client, "/analytics/at-risk")
    form = {
        "csrf_token": token,
        "learner": site.users["ana"],
        "course": site.courses["Fire Safety"],
        "note": "Called Ana; she starts Monday.",
    }
    assert client.post("/analytics/at-risk/acknowledge", data=form).status_code == 302
    other = {**form, "learner": site.users["yuri"], "course": site.courses["Forklift"]}
    # Another company's learner: an audited 403, and nothing stored.
    assert client.post("/analytics/at-risk/acknowledge", data=other).status_code == 403
    assert client.post("/analytics/at-risk/acknowledge",
                       data={**form, "csrf_token": "stale"}).status_code == 400  # fmt: skip
    with app.extensions["manireports"].appdb.transaction() as db:
        acks = db.scalars(select(RiskAck)).all()
        audit = db.scalars(select(AuditLog).where(AuditLog.action == "risk_acknowledged")).all()
    assert [(a.userid, a.ackedby, a.note) for a in acks] == [
        (site.users["ana"], site.users["mgr_a"], "Called Ana; she starts Monday.")
    ]
    assert [(e.userid, e.object_id) for e in audit] == [
        (site.users["mgr_a"], f"{site.users['ana']}:{site.courses['Fire Safety']}")
    ]
    assert "Called Ana" in client.get("/analytics/at-risk").get_data(as_text=True)
    assert client_as("ana").get("/analytics/at-risk").status_code == 403


def test_the_overview_reads_the_cache_and_says_how_fresh_it_is(app, site, client_as):
    client = client_as("mgr_a")
    assert "No current figures yet" in client.get("/analytics/").get_data(as_text=True)
    ctx = app.extensions["manireports"]
    refresh_caches(ctx.appdb, ctx.moodle, ttl_s=600, now=NOW)
    page = client.get("/analytics/").get_data(as_text=True)
    assert "Figures as of" in page and "Last 12 months" in page
    assert "Forklift" not in page
