"""The at-risk list: paged and sorted by the database, "never" for people who never logged
in, times in the viewer's own timezone, and a manager's pages hold only their company."""

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from common.analytics.risk import SCORED_MARK, compute_risk_scores
from common.analytics.state import write_mark
from common.models.analytics import Engagement, RiskScore
from tests.factories.sites import DAY, NOW
from tests.web.analytics.pages import cells, page_range, titles
from tests.web.conftest import csrf_token

SYNTHETIC = 50_000  # user ids of the inserted rows: no Moodle user, so shown as "user #id"


@pytest.fixture
def many_flagged(app, site):  # type: ignore[no-untyped-def]
    """120 flagged rows in Fire Safety: score 120 - i, last active i days ago (every tenth
    never), and 30-day time of i minutes for the first ten."""
    ctx = app.extensions["manireports"]
    course = site.courses["Fire Safety"]
    with ctx.appdb.transaction() as db:
        for i in range(120):
            db.add(RiskScore(userid=SYNTHETIC + i, courseid=course, score=120 - i, flagged=True,
                             factors=json.dumps([]),
                             lastactivity=None if i % 10 == 0 else NOW - i * DAY))  # fmt: skip
            if i < 10:
                db.add(Engagement(userid=SYNTHETIC + i, courseid=course, seconds_30=i * 60))
        write_mark(db, SCORED_MARK, NOW)
    return course


def learners(html):  # type: ignore[no-untyped-def]
    return [int(row[0].removeprefix("user #")) for row in cells(html, "at-risk-table")
            if len(row) > 1]  # fmt: skip


def test_the_list_pages_and_sorts_in_the_database(many_flagged, client_as):
    admin = client_as("admin")
    first = admin.get("/analytics/at-risk").get_data(as_text=True)
    assert page_range(first) == (1, 50, 120)
    assert learners(first) == [SYNTHETIC + i for i in range(50)]  # highest score first
    assert 'rel="next"' in first and 'rel="prev"' not in first
    last = admin.get("/analytics/at-risk?page=3").get_data(as_text=True)
    assert page_range(last) == (101, 120, 120) and 'rel="next"' not in last
    assert learners(last) == [SYNTHETIC + i for i in range(100, 120)]
    # Ascending last activity: the twelve who never came first (by the row key), then the
    # longest ago.
    oldest = admin.get("/analytics/at-risk?sort=lastactivity&dir=asc&page_size=15")
    rows = learners(oldest.get_data(as_text=True))
    assert rows[:12] == [SYNTHETIC + i for i in range(0, 120, 10)]
    assert rows[12:] == [SYNTHETIC + 119, SYNTHETIC + 118, SYNTHETIC + 117]
    by_time = admin.get("/analytics/at-risk?sort=seconds_30&dir=desc&page_size=3")
    assert learners(by_time.get_data(as_text=True)) == [SYNTHETIC + 9, SYNTHETIC + 8, SYNTHETIC + 7]
    # The page size is capped at 500; past the last page says so.
    everything = admin.get("/analytics/at-risk?page_size=100000").get_data(as_text=True)
    assert page_range(everything) == (1, 120, 120)
    past = admin.get("/analytics/at-risk?page=9").get_data(as_text=True)
    assert "past the last page (3)" in past and learners(past) == []


@pytest.mark.parametrize(
    "query",
    ["page=0", "page=-1", "page=two", "page_size=0", "page=99999999999", "sort=factors",
     "sort=learner", "sort=nope", "dir=sideways", "sort=score%27%20--"],
)  # fmt: skip
def test_odd_paging_is_a_400_naming_the_field(many_flagged, client_as, query):
    response = client_as("admin").get(f"/analytics/at-risk?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.get_data(as_text=True)


def test_never_and_times_in_the_viewers_timezone(app, site, client_as):
    moodle = site.moodle
    users = moodle.tables.user
    ben_login = NOW - 3 * DAY
    with moodle.engine.begin() as conn:
        conn.execute(
            update(users).where(users.c.id == site.users["ben"]).values(lastaccess=ben_login)
        )
        conn.execute(update(users).where(users.c.id == site.users["mgr_a"])
                     .values(timezone="Asia/Kolkata"))  # fmt: skip
    ctx = app.extensions["manireports"]
    compute_risk_scores(ctx.appdb, ctx.moodle, now=NOW, flag_score=50)
    client = client_as("mgr_a")
    page = client.get("/analytics/at-risk?sort=lastactivity&dir=desc").get_data(as_text=True)
    assert "9999" not in page
    rows = cells(page, "at-risk-table")
    ana = next(r for r in rows if r[0] == "Ana Learner" and r[1] == "Fire Safety")
    assert "Days since the last login: never" in ana[3]
    assert "Days since the course was opened: never" in ana[3]
    assert ana[5] == "never"  # last activity
    ben = rows[0]  # the only one who ever came: most recent first
    assert ben[0] == "Ben Learner" and ben[5] == "3 days ago"
    assert "last login" not in ben[3]  # 3 days: within the rule's 7
    local = datetime.fromtimestamp(ben_login, UTC).astimezone(ZoneInfo("Asia/Kolkata"))
    assert f"{local.day} {local:%b %Y, %H:%M} IST" in titles(page, "at-risk-table")[0]
    assert "Time, 30 days" in page and "xAPI" not in page and "Video" not in page
    # An acknowledgement keeps the page and order it was made from, and reads "just now".
    token = csrf_token(client, "/analytics/at-risk")
    response = client.post(
        "/analytics/at-risk/acknowledge?sort=lastactivity&dir=desc&page=1",
        data={"csrf_token": token, "learner": site.users["ben"],
              "course": site.courses["Fire Safety"], "note": "Called Ben."},
    )  # fmt: skip
    assert response.status_code == 302
    assert response.headers["Location"].endswith(
        "/analytics/at-risk?sort=lastactivity&dir=desc&page=1"
    )


def test_a_manager_never_pages_into_another_company(many_flagged, app, site, client_as):
    ctx = app.extensions["manireports"]
    compute_risk_scores(ctx.appdb, ctx.moodle, now=NOW, flag_score=50)  # replaces the 120
    client = client_as("mgr_b")
    names = set()
    bolt = site.companies["B"]
    queries = ("", "?sort=lastactivity", "?sort=score&dir=asc", "?page_size=500",
               "?sort=seconds_30&page=1&page_size=1", f"?company={bolt}")  # fmt: skip
    for query in queries:
        page = client.get("/analytics/at-risk" + query).get_data(as_text=True)
        names |= {row[0] for row in cells(page, "at-risk-table")}
    assert names == {"Yuri Learner", "Zoe Learner", "Xena Learner"}
    asked = client.get(f"/analytics/at-risk?company={site.companies['A']}")
    assert asked.status_code == 403
