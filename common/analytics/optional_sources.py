"""Activity tables that only some sites have: xAPI statements and video watch time.

Neither is in core Moodle's schema. `logstore_xapi_log` is the xAPI logstore plugin's table
(the standard log's columns, one row per statement sent); `videotime_session` is mod_videotime's
per-viewing record (`user_id`, `module_id` = course_modules.id, `time` = seconds watched,
`timestarted`). Each is used when its setting is on and the table exists; otherwise its figure
is simply absent (None), never an error.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, func, inspect, select

from common.moodle import MoodleSource
from common.settings import Settings


def xapi_table(prefix: str) -> Table:
    return Table(
        f"{prefix}logstore_xapi_log", MetaData(),
        Column("id", BigInteger, primary_key=True), Column("userid", BigInteger),
        Column("courseid", BigInteger), Column("timecreated", BigInteger),
    )  # fmt: skip


def video_table(prefix: str) -> Table:
    return Table(
        f"{prefix}videotime_session", MetaData(),
        Column("id", BigInteger, primary_key=True), Column("user_id", BigInteger),
        Column("module_id", BigInteger), Column("time", Integer),
        Column("timestarted", BigInteger),
    )  # fmt: skip


def _present(source: MoodleSource, table: Table) -> bool:
    with source.engine.connect() as conn:
        return inspect(conn).has_table(table.name)


def xapi_statements(
    source: MoodleSource, settings: Settings, since: int
) -> dict[tuple[int, int], int] | None:
    """xAPI statements per (user, course) since `since`, or None when not tracked here."""
    table = xapi_table(source.prefix)
    if not settings.analytics_xapi_enabled or not _present(source, table):
        return None
    query = (
        select(table.c.userid, table.c.courseid, func.count())
        .where(table.c.timecreated >= since, table.c.courseid > 0)
        .group_by(table.c.userid, table.c.courseid)
    )
    with source.engine.connect() as conn:
        return {(int(u), int(c)): int(n) for u, c, n in conn.execute(query)}


def video_seconds(
    source: MoodleSource, settings: Settings, since: int
) -> dict[tuple[int, int], int] | None:
    """Seconds of video watched per (user, course) since `since`, or None when not tracked."""
    table = video_table(source.prefix)
    if not settings.analytics_video_enabled or not _present(source, table):
        return None
    cm = source.tables.course_modules
    query = (
        select(table.c.user_id, cm.c.course, func.sum(table.c.time))
        .join(cm, cm.c.id == table.c.module_id)
        .where(table.c.timestarted >= since)
        .group_by(table.c.user_id, cm.c.course)
    )
    watched: dict[tuple[int, int], int] = defaultdict(int)
    with source.engine.connect() as conn:
        for user, course, seconds in conn.execute(query):
            watched[(int(user), int(course))] += int(seconds or 0)
    return dict(watched)


@dataclass(frozen=True)
class OptionalSources:
    """Which optional figures this site has: pages show their columns only then."""

    xapi: bool
    video: bool


SOURCES_TTL_S = 60.0


def optional_sources(source: MoodleSource, settings: Settings) -> OptionalSources:
    """Whether xAPI statements and video time are tracked here (setting on, table present).
    Remembered for a minute per site: a page asks on every view, a plugin is rarely added."""
    xapi_on, video_on = settings.analytics_xapi_enabled, settings.analytics_video_enabled
    return source.remembered(
        ("optional_sources", xapi_on, video_on),
        SOURCES_TTL_S,
        lambda: OptionalSources(
            xapi=xapi_on and _present(source, xapi_table(source.prefix)),
            video=video_on and _present(source, video_table(source.prefix)),
        ),
    )
