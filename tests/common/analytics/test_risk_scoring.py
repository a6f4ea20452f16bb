"""At-risk scoring run after run on the two-company site: a run writes only the rows whose
figures changed, drops learners no longer enrolled, and leaves exactly what scoring an empty
table at the same moment gives."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from common.analytics.risk import compute_risk_scores
from common.db import make_engine
from common.models.analytics import RiskScore
from common.moodle import MoodleSource
from common.moodle.tables import MoodleTables
from tests.factories.sites import NOW

DAY_S = 86_400


def scores(appdb) -> dict[tuple[int, int], tuple]:  # type: ignore[no-untyped-def]
    """Each row's figures; of the flag's start only whether there is one (a fresh scoring
    starts every flag now, a later run keeps the start of a flag that stands)."""
    r = RiskScore
    with appdb.transaction() as session:
        rows = session.execute(select(r.userid, r.courseid, r.score, r.flagged, r.factors,
                                      r.lastactivity, r.flagged_at)).all()  # fmt: skip
    return {(u, c): (s, bool(f), x, a, t is not None) for u, c, s, f, x, a, t in rows}


def computed_at(appdb) -> dict[tuple[int, int], object]:  # type: ignore[no-untyped-def]
    with appdb.transaction() as session:
        rows = session.execute(select(RiskScore.userid, RiskScore.courseid, RiskScore.computed_at))
        return {(u, c): at for u, c, at in rows}


def fresh_scores(appdb, source, now: int) -> dict[tuple[int, int], tuple]:  # type: ignore[no-untyped-def]
    with appdb.transaction() as session:
        session.execute(delete(RiskScore))
    compute_risk_scores(appdb, source, now=now, flag_score=50)
    return scores(appdb)


def test_runs_days_apart_leave_what_a_fresh_scoring_gives(appdb, site):
    source = MoodleSource(site.url)
    compute_risk_scores(appdb, source, now=NOW, flag_score=50)
    first = scores(appdb)
    assert first and any(row[1] for row in first.values())
    for days in (0, 3, 20, 60):
        compute_risk_scores(appdb, source, now=NOW + days * DAY_S, flag_score=50)
        later = scores(appdb)
        assert later == fresh_scores(appdb, source, NOW + days * DAY_S), days
    source.dispose()


def test_a_run_with_nothing_changed_writes_no_row(appdb, site):
    source = MoodleSource(site.url)
    compute_risk_scores(appdb, source, now=NOW, flag_score=50)
    before = computed_at(appdb)
    compute_risk_scores(appdb, source, now=NOW, flag_score=50)
    assert computed_at(appdb) == before
    source.dispose()


def test_a_learner_no_longer_enrolled_loses_their_row(appdb, site):
    source = MoodleSource(site.url)
    compute_risk_scores(appdb, source, now=NOW, flag_score=50)
    user, course = sorted(scores(appdb))[0]
    t = MoodleTables()
    engine = make_engine(site.url)
    with engine.begin() as conn:
        enrols = select(t.enrol.c.id).where(t.enrol.c.courseid == course)
        conn.execute(
            update(t.user_enrolments)
            .where(t.user_enrolments.c.userid == user, t.user_enrolments.c.enrolid.in_(enrols))
            .values(status=1)  # suspended: not an active enrolment
        )  # fmt: skip
    engine.dispose()
    compute_risk_scores(appdb, source, now=NOW, flag_score=50)
    after = scores(appdb)
    assert (user, course) not in after
    assert after == fresh_scores(appdb, source, NOW)
    source.dispose()
