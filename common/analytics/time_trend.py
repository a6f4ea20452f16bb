"""Time on task and active learners per day over the last 30 days, for the overview's charts.

A (learner, course, date) has at most two daily rows, a heartbeat figure and a log estimate;
the heartbeat figure wins (the rule `usertime.daily_time` and the engagement table follow).
The cache refresh groups the figures per learner and date (`usertime.grouped_figures`) and
folds them into every company's series at once (`series_by_scope`); a viewer narrower than a
company gets theirs read within their tenant scope (`daily_series`). A refresh after an
earlier one recomputes only the dates whose rows changed and carries the others over
(`moved_on`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from common.analytics.trends import SITE, Scope
from common.analytics.usertime import chosen_daily, grouped_figures
from common.models.analytics import UsertimeDaily
from common.moodle import MoodleSource
from common.tenancy import TenantScope, scoped

DAYS = 30


def _empty(since: date, days: int) -> dict[str, Any]:
    labels = [(since + timedelta(days=n)).isoformat() for n in range(days)]
    return {"days": labels, "seconds": [0] * days, "learners": [0] * days, "estimated": False,
            "estimated_days": [False] * days}  # fmt: skip


PER_DAY = ("seconds", "learners", "estimated_days")


def daily_series(
    session: Session, scope: TenantScope, source: MoodleSource, today: date, days: int = DAYS
) -> dict[str, Any]:
    """{days: ISO dates oldest first, seconds: per day, learners: active per day, estimated:
    whether any figure is a log estimate} for the learners and courses ``scope`` sees."""
    since = today - timedelta(days=days - 1)
    k = chosen_daily(since, today)
    seconds = func.coalesce(k.c.measured, k.c.estimate)
    query = select(
        k.c.date, func.sum(seconds), func.count(distinct(k.c.userid)),
        func.max(case((k.c.measured.is_(None), 1), else_=0)),
    ).group_by(k.c.date)  # fmt: skip
    series = _empty(since, days)
    for day, total, learners, estimated in session.execute(scoped(query, scope, source)):
        index = (as_date(day) - since).days
        series["seconds"][index] = int(total or 0)
        series["learners"][index] = int(learners or 0)
        series["estimated_days"][index] = bool(estimated)
    series["estimated"] = any(series["estimated_days"])
    return series


def series_by_scope(
    session: Session,
    members: dict[int, set[int]],
    today: date,
    days: int = DAYS,
    *,
    only: Collection[date] | None = None,
) -> dict[Scope, dict[str, Any]]:
    """The same series for the site and for each company (its members' time), in one read;
    with `only`, the figures of those dates alone (the others left at 0)."""
    since = today - timedelta(days=days - 1)
    queries = grouped_figures(
        lambda f: (f.userid, f.date),
        lambda f: (f.userid, f.date, func.sum(f.seconds), func.max(f.is_estimate)),
        since, today, *([] if only is None else [UsertimeDaily.date.in_(only)]),
    )  # fmt: skip
    user_scopes: dict[int, list[Scope]] = defaultdict(lambda: [SITE])
    for company, users in members.items():
        for user in users:
            user_scopes[user].append(company)
    found: dict[Scope, dict[str, Any]] = defaultdict(lambda: _empty(since, days))
    found[SITE] = _empty(since, days)
    rows = (row for query in queries for row in session.execute(query))
    for user, day, total, estimated in rows:
        index = (as_date(day) - since).days
        for scope in user_scopes[user]:
            series = found[scope]
            series["seconds"][index] += int(total or 0)
            series["learners"][index] += 1
            series["estimated_days"][index] = series["estimated_days"][index] or bool(estimated)
    for series in found.values():
        series["estimated"] = any(series["estimated_days"])
    return dict(found)


def moved_on(
    stored: dict[Scope, dict[str, Any]],
    fresh: dict[Scope, dict[str, Any]],
    dates: Collection[date],
    today: date,
    days: int = DAYS,
) -> dict[Scope, dict[str, Any]]:
    """Each scope's `stored` series moved on to the window ending `today` (dates that left it
    dropped, new ones 0), with the figures of `dates` taken from `fresh`: series computed for
    those dates only (`series_by_scope(only=dates)`), where a scope absent had none."""
    since = today - timedelta(days=days - 1)
    moved: dict[Scope, dict[str, Any]] = {}
    for scope in stored.keys() | fresh.keys():
        series = _empty(since, days)
        old = stored.get(scope)
        for position, label in enumerate(old["days"] if old else []):
            index = (date.fromisoformat(label) - since).days
            if 0 <= index < days:
                for key in PER_DAY:
                    series[key][index] = old[key][position]  # type: ignore[index]
        new = fresh.get(scope, _empty(since, days))
        for day in dates:
            index = (day - since).days
            if 0 <= index < days:
                for key in PER_DAY:
                    series[key][index] = new[key][index]
        series["estimated"] = any(series["estimated_days"])
        moved[scope] = series
    return moved


def empty_series(today: date, days: int = DAYS) -> dict[str, Any]:
    return _empty(today - timedelta(days=days - 1), days)


def as_date(value: Any) -> date:
    # SQLite hands a grouped DATE back as text.
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
