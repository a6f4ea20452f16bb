"""Time on task per day: heartbeats over estimates, every day of the window present, the
cached per-company series and the series read within a tenant scope agreeing."""

from datetime import date, timedelta

from sqlalchemy import insert

from common.analytics.time_trend import daily_series, series_by_scope
from common.models.analytics import UsertimeDaily
from common.tenancy import SITE, TenantScope

TODAY = date(2026, 11, 18)


def daily(user, course, days_ago, seconds, estimated):  # type: ignore[no-untyped-def]
    return {"userid": user, "courseid": course, "date": TODAY - timedelta(days=days_ago),
            "seconds": seconds, "estimated": estimated}  # fmt: skip


def test_a_day_sums_heartbeats_over_estimates_and_counts_learners_once(appdb):
    with appdb.transaction() as session:
        session.execute(insert(UsertimeDaily), [
            daily(2, 10, 0, 600, True), daily(2, 10, 0, 60, False),  # the beat's 60 s win
            daily(2, 11, 0, 300, True),  # another course, estimated only
            daily(3, 10, 0, 120, False),
            daily(2, 10, 29, 10, True),  # the oldest day of the window
            daily(2, 10, 30, 999, True),  # 31 days ago: outside
            daily(4, 10, -1, 5000, False),  # tomorrow: not yet
        ])  # fmt: skip
    with appdb.transaction() as session:
        site = daily_series(session, SITE, None, TODAY)  # type: ignore[arg-type]
        by_scope = series_by_scope(session, {7: {3}, 8: set()}, TODAY)
    assert len(site["days"]) == 30
    assert site["days"][0] == "2026-10-20" and site["days"][-1] == "2026-11-18"
    assert site["seconds"][-1] == 60 + 300 + 120 and site["learners"][-1] == 2
    assert site["seconds"][0] == 10 and site["learners"][0] == 1
    assert sum(site["seconds"]) == 490 and site["estimated"]
    assert by_scope[None]["seconds"] == site["seconds"]
    assert by_scope[None]["learners"] == site["learners"]
    assert by_scope[7]["seconds"][-1] == 120 and by_scope[7]["learners"][-1] == 1
    assert not by_scope[7]["estimated"] and sum(by_scope[7]["seconds"]) == 120
    assert 8 not in by_scope  # a company whose members did nothing: the page shows zeros


def test_a_learner_limited_scope_reads_only_their_own_days(appdb):
    with appdb.transaction() as session:
        session.execute(insert(UsertimeDaily), [daily(2, 10, 1, 60, False),
                                                daily(3, 10, 1, 500, False)])  # fmt: skip
    with appdb.transaction() as session:
        own = daily_series(session, TenantScope(None, user_ids=frozenset({3})), None, TODAY)  # type: ignore[arg-type]
    assert own["seconds"][-2] == 500 and own["learners"][-2] == 1 and sum(own["seconds"]) == 500
