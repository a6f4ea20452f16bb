"""Dashboard documents from crafted logs and completions in two companies: the figures against
hand-computed ones, and an incremental refresh against a from-scratch one."""

import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from common.analytics import caches, state
from common.analytics.caches import read_cache, refresh_caches
from common.analytics.time_trend import empty_series
from common.analytics.trends import company_members
from common.analytics.upsert import upsert
from common.appdb import AppDB
from common.db import make_engine
from common.migrate import upgrade
from common.models.analytics import UsertimeDaily
from common.models.base import table_of, utcnow
from common.moodle import MoodleSource
from tests.factories.moodle import MoodleFactory

NOW = 1_781_524_800  # 2026-06-15 12:00 UTC: the trend runs from 2025-07 to 2026-06
DAY = 86_400
MONTHS = ["2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12",
          "2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]  # fmt: skip


def at(day: str, hour: int = 12) -> int:
    return int(datetime.fromisoformat(f"{day}T{hour:02}:00:00+00:00").timestamp())


class CraftedSite:
    """Two companies (a user of each, one in both, one in neither) and what was logged."""

    def __init__(self, moodle: MoodleFactory):
        self.moodle = moodle
        self.course = moodle.course()
        self.acme, self.globex = moodle.company(name="Acme"), moodle.company(name="Globex")
        self.ana, self.ben, self.cara, self.dan = (moodle.user() for _ in range(4))
        self.members: dict[int, set[int]] = defaultdict(set)
        for company, user in ((self.acme, self.ana), (self.globex, self.ben),
                              (self.acme, self.cara), (self.globex, self.cara)):  # fmt: skip
            self.join(company, user)
        # cara in a second department of Acme is still one member
        second = moodle.department(self.acme, parent=moodle.top_department(self.acme))
        moodle.company_user(self.acme, self.cara, departmentid=second)
        self.logs: dict[int, tuple[int, int]] = {}  # log id -> (user, time)
        self.completions: dict[int, int] = {}  # user -> time

    def join(self, company: int, user: int) -> None:
        self.moodle.company_user(company, user)
        self.members[company].add(user)

    def log(self, user: int, when: int) -> None:
        self.logs[self.moodle.log(userid=user, courseid=self.course, timecreated=when)] = (
            user, when
        )  # fmt: skip

    def complete(self, user: int, when: int) -> None:
        self.moodle.complete(user, self.course, when=when)
        self.completions[user] = when

    def expected(self, company: int | None, now: int) -> dict[str, list]:
        """The trend, counted here from the facts: events and distinct users of real users
        (not the guest) and completions, per UTC month of the window, up to `now`."""

        def belongs(user: int) -> bool:
            return company is None or user in self.members[company]

        def month(when: int) -> str:
            return datetime.fromtimestamp(when, UTC).strftime("%Y-%m")

        shown = [(user, month(when)) for user, when in self.logs.values()
                 if user > 1 and when <= now and belongs(user)]  # fmt: skip
        events = Counter(m for _, m in shown)
        users = Counter(m for _, m in set(shown))
        done = Counter(month(when) for user, when in self.completions.items()
                       if when <= now and belongs(user))  # fmt: skip
        return {"months": MONTHS, "events": [events[m] for m in MONTHS],
                "active_users": [users[m] for m in MONTHS],
                "completions": [done[m] for m in MONTHS]}  # fmt: skip


@pytest.fixture
def crafted(moodle_url):
    engine = make_engine(moodle_url)
    site = CraftedSite(MoodleFactory(engine, now=NOW))
    source = MoodleSource(moodle_url)
    yield site, source
    source.dispose()
    engine.dispose()


def log_several_months(site: CraftedSite) -> None:
    for user, day in [
        (site.ana, "2025-06-30"),  # before the window
        (site.ana, "2025-07-01"), (site.ana, "2025-07-20"), (site.ben, "2025-07-31"),
        (site.cara, "2025-12-05"), (site.cara, "2025-12-06"), (site.dan, "2025-12-07"),
        (site.ben, "2026-03-10"), (site.cara, "2026-03-11"),
        (site.ana, "2026-06-01"), (site.dan, "2026-06-14"), (site.cara, "2026-06-15"),
        (1, "2026-06-02"),  # the guest does not count
        (site.ben, "2026-06-15"),  # 13:00, after `now`: not yet counted
    ]:  # fmt: skip
        site.log(user, at(day, 13 if day == "2026-06-15" and user == site.ben else 12))
    site.complete(site.ana, at("2025-07-21"))
    site.complete(site.cara, at("2026-03-12"))
    site.complete(site.dan, at("2026-06-10"))


def documents(appdb: AppDB, scopes: list[int | None]) -> dict[int | None, dict]:
    with appdb.transaction() as session:
        now = datetime.now(UTC)
        return {scope: read_cache(session, scope, now).payload for scope in scopes}  # type: ignore[union-attr]


def from_scratch(tmp_path: Path, source: MoodleSource, now: int, scopes) -> dict:
    url = f"sqlite:///{tmp_path / 'fresh-app.db'}"
    upgrade(url)
    fresh = AppDB(url)
    try:
        refresh_caches(fresh, source, ttl_s=600, now=now)
        return documents(fresh, scopes)
    finally:
        fresh.dispose()


def test_trends_count_each_month_per_company(appdb, crafted):
    site, source = crafted
    log_several_months(site)

    assert refresh_caches(appdb, source, ttl_s=600, now=NOW) == 3

    scopes = [None, site.acme, site.globex]
    for scope, payload in documents(appdb, scopes).items():
        assert payload["trend"] == site.expected(scope, NOW), scope
    acme = documents(appdb, [site.acme])[site.acme]["trend"]
    assert acme["events"][-1] == 2 and acme["active_users"][-1] == 2  # ana and cara in June


def test_an_incremental_refresh_gives_what_a_full_one_gives(appdb, crafted, tmp_path):
    site, source = crafted
    log_several_months(site)
    refresh_caches(appdb, source, ttl_s=600, now=NOW)
    later = NOW + DAY
    site.log(site.ben, at("2026-06-16", 9))
    site.log(site.dan, at("2026-06-16", 10))
    site.log(site.ana, at("2026-06-17"))  # after the next `now` too
    site.log(site.ben, at("2026-03-30"))  # a late row of an older month
    site.join(site.acme, site.dan)  # dan's earlier activity now counts for Acme too
    site.complete(site.ben, at("2026-06-16", 8))

    refresh_caches(appdb, source, ttl_s=600, now=later)

    scopes = [None, site.acme, site.globex]
    incremental = documents(appdb, scopes)
    assert incremental == from_scratch(tmp_path, source, later, scopes)
    for scope in scopes:
        assert incremental[scope]["trend"] == site.expected(scope, later), scope


def test_deleted_old_log_rows_leave_the_trend(appdb, crafted, tmp_path):
    site, source = crafted
    log_several_months(site)
    refresh_caches(appdb, source, ttl_s=600, now=NOW)
    logstore = source.tables.logstore_standard_log
    oldest = sorted(site.logs)[:4]  # Moodle's log lifetime: rows up to 2025-07-31 go
    with site.moodle.engine.begin() as conn:  # the source is read-only
        conn.execute(delete(logstore).where(logstore.c.id.in_(oldest)))
    for log_id in oldest:
        del site.logs[log_id]

    refresh_caches(appdb, source, ttl_s=600, now=NOW)

    scopes = [None, site.acme, site.globex]
    assert documents(appdb, scopes) == from_scratch(tmp_path, source, NOW, scopes)
    assert documents(appdb, [None])[None]["trend"] == site.expected(None, NOW)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_daily_series_kept_up_day_by_day_equals_one_computed_whole(
    appdb, crafted, monkeypatch, seed
):
    only_dates = []
    whole_series = caches.series_by_scope

    def spied(*args, **kwargs):  # type: ignore[no-untyped-def]
        only_dates.append(kwargs.get("only"))
        return whole_series(*args, **kwargs)

    monkeypatch.setattr(caches, "series_by_scope", spied)
    site, source = crafted
    rng = random.Random(seed)
    users = [site.ana, site.ben, site.cara, site.dan]
    scopes = [None, site.acme, site.globex]
    now = NOW
    for step in range(14):
        today = datetime.fromtimestamp(now, UTC).date()
        rows = [
            {"userid": rng.choice(users), "courseid": rng.choice([10, 11]),
             # mostly the last days; now and then a late row weeks back or one dated ahead
             "date": today - timedelta(days=rng.choice([0, 0, 1, 2, 9, 29, 31, -1])),
             "seconds": rng.randrange(1, 4000), "estimated": rng.random() < 0.6,
             "timemodified": utcnow()}
            for _ in range(rng.randrange(0, 8))
        ]  # fmt: skip
        with appdb.transaction() as session:
            write = {"writeseq": state.next_daily_write(session)}  # numbered as writers do
            upsert(session, table_of(UsertimeDaily), [row | write for row in rows],
                   key=("userid", "courseid", "date", "estimated"),
                   update=("seconds", "timemodified", "writeseq"))  # fmt: skip
        if step == 9:
            site.join(site.globex, site.dan)  # new members: every date counts otherwise
        time.sleep(0.002)  # the mark has millisecond precision
        now += rng.choice([0, DAY, DAY, 2 * DAY]) if step != 5 else 40 * DAY
        refresh_caches(appdb, source, ttl_s=600, now=now)

        today = datetime.fromtimestamp(now, UTC).date()
        with appdb.transaction() as session:
            whole = whole_series(session, company_members(source), today)
        for scope, document in documents(appdb, scopes).items():
            assert document["daily_time"] == whole.get(scope, empty_series(today)), (step, scope)
    assert any(dates is not None for dates in only_dates)  # the refreshes were incremental
    assert only_dates.count(None) >= 3  # the first, after 40 days, after new members
