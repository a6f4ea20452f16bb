"""SCORM summaries: the same attempts give the same figures on both tracking layouts, and an
incremental update after new tracks equals a full recompute."""

import pytest
from sqlalchemy import select

from common.analytics.scorm import attempt_tracking, duration_seconds, update_scorm_summary
from common.appdb import AppDB
from common.db import make_engine
from common.migrate import upgrade
from common.models.analytics import ScormSummary
from common.moodle import MoodleSource
from common.tenancy import SITE
from tests.factories.moodle import MoodleFactory

NOW = 1_795_000_000


def build(url, prefix, layout):
    """One site: Ana in a SCORM 1.2 package (two attempts), Ben in a SCORM 2004 one."""
    engine = make_engine(url)
    moodle = MoodleFactory(engine, prefix=prefix, scorm_layout=layout, now=NOW)
    course = moodle.course()
    old, new = moodle.scorm(course), moodle.scorm(course, version="SCORM_13")
    ana, ben = moodle.user(), moodle.user()
    for element, value, attempt in (
        ("x.start.time", str(NOW - 9000), 1),
        ("cmi.core.lesson_status", "incomplete", 1),
        ("cmi.core.total_time", "00:10:00", 1),
        ("cmi.suspend_data", "page=4", 1),
        ("cmi.interactions.0.id", "q1", 1),
        ("cmi.interactions.0.result", "correct", 1),
        ("cmi.interactions.1.id", "q2", 1),
        ("cmi.core.lesson_status", "passed", 2),
        ("cmi.core.score.raw", "85", 2),
        ("cmi.core.total_time", "00:05:30.50", 2),
    ):
        moodle.scorm_track(ana, old, element, value, attempt=attempt, when=NOW - 5000)
    for element, value in (
        ("cmi.completion_status", "completed"),
        ("cmi.success_status", "failed"),
        ("cmi.score.raw", "40"),
        ("cmi.total_time", "PT1H2M3S"),
    ):
        moodle.scorm_track(ben, new, element, value, when=NOW - 4000)
    engine.dispose()
    return moodle, {"course": course, "old": old, "new": new, "ana": ana, "ben": ben}


def summary(appdb):
    with appdb.transaction() as session:
        rows = session.scalars(select(ScormSummary).order_by(ScormSummary.scormid))
        return [
            (r.scormid, r.courseid, r.userid, r.attempts, r.completion_status, r.success_status,
             r.best_score, r.has_suspend_data, r.interactions, r.total_time_s,
             r.avg_attempt_time_s, r.lasttracked)
            for r in rows
        ]  # fmt: skip


@pytest.fixture
def fresh_appdb(tmp_path):
    def make(name):
        url = f"sqlite:///{tmp_path / name}"
        upgrade(url)
        return AppDB(url)

    return make


def test_scorm_times_parse_in_both_formats():
    assert duration_seconds("00:05:30.50") == 330.5
    assert duration_seconds("0001:00:00") == 3600
    assert duration_seconds("PT1H2M3S") == 3723
    assert duration_seconds("P1DT0.5S") == 86400.5
    assert duration_seconds("garbage") == duration_seconds("") == duration_seconds("PT") == 0


def test_both_layouts_give_the_same_hand_computed_summary(moodle_url, fresh_appdb):
    results = []
    for prefix, layout in (("trk_", "track"), ("att_", "attempt")):
        _, ids = build(moodle_url, prefix, layout)
        source = MoodleSource(moodle_url, prefix)
        appdb = fresh_appdb(f"{layout}.db")
        run = update_scorm_summary(appdb, source)
        assert run.layout == layout and run.pairs == 2
        results.append(summary(appdb))
        source.dispose()
        appdb.dispose()
    track, attempt = results
    c, old, new = ids["course"], ids["old"].instance, ids["new"].instance
    assert (
        track
        == attempt
        == [
            (old, c, ids["ana"], 2, "completed", "passed", 85.0, True, 2, 931, 465, NOW - 5000),
            (new, c, ids["ben"], 1, "completed", "failed", 40.0, False, 0, 3723, 3723, NOW - 4000),
        ]
    )


def test_incremental_update_after_new_tracks_equals_a_full_recompute(moodle_url, fresh_appdb):
    moodle, ids = build(moodle_url, "mdl_", "attempt")
    source = MoodleSource(moodle_url)
    appdb = fresh_appdb("incremental.db")
    update_scorm_summary(appdb, source)
    # Ben's second attempt, and Ana opens the 2004 package: written after the first run.
    for element, value in (("cmi.completion_status", "completed"),
                           ("cmi.success_status", "passed"), ("cmi.score.raw", "75"),
                           ("cmi.total_time", "PT20M")):  # fmt: skip
        moodle.scorm_track(ids["ben"], ids["new"], element, value, attempt=2, when=NOW - 100)
    moodle.scorm_track(ids["ana"], ids["new"], "cmi.completion_status", "incomplete",
                       when=NOW - 50)  # fmt: skip
    run = update_scorm_summary(appdb, source)
    assert run.pairs == 2  # only the two learners with new tracking were recomputed
    full = fresh_appdb("full.db")
    update_scorm_summary(full, source, full=True)
    assert summary(appdb) == summary(full)
    ben_row = [r for r in summary(appdb) if r[2] == ids["ben"]][0]
    assert ben_row[3:7] == (2, "completed", "passed", 75.0)
    assert update_scorm_summary(appdb, source).pairs == 2  # the overlap rereads, harmlessly
    assert summary(appdb) == summary(full)
    source.dispose()
    appdb.dispose()
    full.dispose()


def test_drill_down_shows_one_attempts_sco_tracking(moodle_url):
    _, ids = build(moodle_url, "mdl_", "track")
    source = MoodleSource(moodle_url)
    scos = attempt_tracking(source, SITE, userid=ids["ana"], scormid=ids["old"].instance, attempt=2)
    assert [sco["title"] for sco in scos] == ["Lesson"]
    assert scos[0]["elements"] == {"cmi.core.lesson_status": "passed",
                                   "cmi.core.score.raw": "85",
                                   "cmi.core.total_time": "00:05:30.50"}  # fmt: skip
    source.dispose()
