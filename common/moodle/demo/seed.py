"""`seed_site()`: plan a demo Moodle/IOMAD site in memory, then bulk-load it into a database.

The target is a demo database: every Moodle table of the prefix is dropped and recreated.
Tables are created without indexes, loaded, then indexed (one sort per index instead of
millions of index updates). The same arguments, including `now`, give identical rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Connection, Table

from common.db import make_engine
from common.moodle.demo.access import AccessTracker
from common.moodle.demo.activities import plan_activities, write_activities
from common.moodle.demo.bulk import BulkWriter
from common.moodle.demo.companies import plan_companies, write_companies
from common.moodle.demo.contexts import CONTEXT_COLUMNS, COURSE, USER, ContextTree
from common.moodle.demo.courses import Categories, plan_courses, write_courses
from common.moodle.demo.enrolment import plan_enrolments, write_enrolments
from common.moodle.demo.licenses import write_licences_and_email
from common.moodle.demo.logs import LogSimulator
from common.moodle.demo.model import HOUR, SITE_COURSE_ID, Clock, DemoSite, topic_rng
from common.moodle.demo.passwords import DEMO_PASSWORD, PasswordPool
from common.moodle.demo.people import (
    DEMO_STUDENT,
    DEMO_TEACHER,
    USER_COLUMNS,
    plan_people,
    site_installed_at,
    user_rows,
)
from common.moodle.demo.progress import ProgressSimulator, write_progress
from common.moodle.demo.site import (
    config_plugin_rows,
    config_rows,
    module_rows,
    role_rows,
    site_course_row,
)
from common.moodle.tables import (
    DEFAULT_PREFIX,
    ScormLayout,
    create_indexes,
    recreate_site_tables,
    sync_id_sequences,
)

SCORM_LAYOUTS = ("attempt", "track")


class DemoSizeError(ValueError):
    """The requested demo site cannot be built; the message names the argument."""


class DemoLogin(NamedTuple):
    role: str
    username: str
    password: str


@dataclass(frozen=True)
class SeedSummary:
    prefix: str
    scorm_layout: ScormLayout
    iomad: bool
    seed: int
    now: int
    days: int
    rows: Mapping[str, int]  # rows written per table, by unprefixed name
    logins: list[DemoLogin]
    seconds: float

    @property
    def log_rows(self) -> int:
        return self.rows.get("logstore_standard_log", 0)


def seed_site(
    url: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    users: int = 500,
    courses: int = 20,
    companies: int = 3,
    days: int = 30,
    seed: int = 1,
    layout: ScormLayout = "attempt",
    iomad: bool = True,
    logs_per_user_day: float = 4.0,
    target_log_rows: int | None = None,
    now: int | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> SeedSummary:
    """Create a demo site of `users` accounts (besides guest and admin) in the database at `url`.

    The log holds `target_log_rows` rows, or users × days × `logs_per_user_day` when that is
    None (plus the events of learning steps, when those alone exceed it). `now` (Unix seconds)
    ends the window of `days` days; it defaults to the start of the current hour, so give it
    explicitly for data that is identical from one run to the next.
    """
    _check(
        users=users,
        courses=courses,
        companies=companies,
        days=days,
        layout=layout,
        iomad=iomad,
        logs_per_user_day=logs_per_user_day,
        target_log_rows=target_log_rows,
    )
    report = on_progress or (lambda message: None)
    started = time.perf_counter()
    clock = Clock(now if now is not None else int(time.time()) // HOUR * HOUR, days)
    plan = _plan(seed, clock, users, courses, companies if iomad else 0, iomad)
    report(
        f"planned {users:,} users, {courses:,} courses, {len(plan.site.enrolments):,} enrolments"
    )
    total_logs = (
        target_log_rows if target_log_rows is not None else round(users * days * logs_per_user_day)
    )
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            _prepare_for_load(connection)
            tables = recreate_site_tables(
                connection, prefix, iomad=iomad, scorm_layout=layout, with_indexes=False
            )
            connection.commit()
            writer = BulkWriter(connection, prefix)
            _write(writer, plan, seed, layout, total_logs, report)
            report("building indexes")
            create_indexes(connection, tables)
            sync_id_sequences(connection, tables)
            connection.commit()
            report("gathering planner statistics")
            _analyze(connection, tables)
    finally:
        engine.dispose()
    return SeedSummary(
        prefix=prefix,
        scorm_layout=layout,
        iomad=iomad,
        seed=seed,
        now=clock.now,
        days=days,
        rows=dict(writer.rows_written),
        logins=_logins(plan.site),
        seconds=time.perf_counter() - started,
    )


def _analyze(connection: Connection, tables: list[Table]) -> None:
    """Give the query planner table statistics, as a live site's database has them.

    InnoDB gathers them by itself after a while (PostgreSQL's autovacuum too); SQLite never
    does, and without them it picks poor join orders for the report queries.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("ANALYZE")
    elif connection.dialect.name == "postgresql":
        quote = connection.dialect.identifier_preparer.quote
        connection.exec_driver_sql(f"ANALYZE {', '.join(quote(t.name) for t in tables)}")
    else:
        names = ", ".join(f"`{table.name}`" for table in tables)
        connection.exec_driver_sql(f"ANALYZE TABLE {names}").fetchall()
    connection.commit()


def _check(
    *,
    users: int,
    courses: int,
    companies: int,
    days: int,
    layout: str,
    iomad: bool,
    logs_per_user_day: float,
    target_log_rows: int | None,
) -> None:
    if users < 10:
        raise DemoSizeError(f"users: {users} is too few (at least 10)")
    if courses < 1:
        raise DemoSizeError(f"courses: {courses} is too few (at least 1)")
    if days < 1:
        raise DemoSizeError(f"days: {days} is too few (at least 1)")
    if iomad and not 1 <= companies <= users // 5:
        raise DemoSizeError(f"companies: {companies} must be 1..{users // 5} for {users} users")
    if layout not in SCORM_LAYOUTS:
        raise DemoSizeError(f"layout: {layout!r} is not one of {SCORM_LAYOUTS}")
    if logs_per_user_day < 0 or (target_log_rows is not None and target_log_rows < 0):
        raise DemoSizeError("logs: the log size cannot be negative")


class _Plan(NamedTuple):
    site: DemoSite
    contexts: ContextTree
    categories: Categories


def _plan(seed: int, clock: Clock, users: int, courses: int, companies: int, iomad: bool) -> _Plan:
    site = DemoSite(clock=clock, iomad=iomad)
    contexts = ContextTree()
    contexts.add(COURSE, SITE_COURSE_ID)  # the front page has a course context too
    pool = PasswordPool(DEMO_PASSWORD, topic_rng(seed, "passwords"))
    teachers = max(1, min(users // 25, courses * 2))
    plan_people(site, topic_rng(seed, "people"), accounts=users, teachers=teachers, pool=pool)
    categories = Categories(contexts, site_installed_at(site))
    if iomad:
        plan_companies(
            site, topic_rng(seed, "companies"), companies=companies, categories=categories,
            contexts=contexts,
        )  # fmt: skip
    plan_courses(
        site, topic_rng(seed, "courses"), courses=courses, categories=categories,
        contexts=contexts,
    )  # fmt: skip
    plan_activities(site, topic_rng(seed, "activities"), contexts)
    for person in site.people:
        contexts.add(USER, person.id)
    plan_enrolments(site, topic_rng(seed, "enrolments"))
    return _Plan(site, contexts, categories)


def _prepare_for_load(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # A demo DB: a crash mid-load means re-seeding, so skip the fsyncs. A large page cache
        # and sorter threads speed up the index builds at the end.
        connection.exec_driver_sql("PRAGMA synchronous=OFF")
        connection.exec_driver_sql("PRAGMA cache_size=-262144")
        connection.exec_driver_sql("PRAGMA temp_store=MEMORY")
        connection.exec_driver_sql(f"PRAGMA threads={min(4, os.cpu_count() or 1)}")
    elif connection.dialect.name == "postgresql":
        # The same bargain on PostgreSQL: commits do not wait for the WAL flush (a crash may
        # lose the last batches, never corrupt), and the index builds get more sort memory.
        connection.exec_driver_sql("SET synchronous_commit = off")
        connection.exec_driver_sql("SET maintenance_work_mem = '256MB'")


def _write(
    writer: BulkWriter,
    plan: _Plan,
    seed: int,
    layout: ScormLayout,
    total_logs: int,
    report: Callable[[str], None],
) -> None:
    site, contexts = plan.site, plan.contexts
    installed = site_installed_at(site)
    writer.insert_dicts("config", config_rows(scorm_layout=layout, iomad=site.iomad))
    writer.insert_dicts("config_plugins", config_plugin_rows(scorm_layout=layout, iomad=site.iomad))
    writer.insert_dicts("role", role_rows(site.iomad))
    writer.insert_dicts("modules", module_rows())
    writer.insert_dicts(
        "course",
        [site_course_row(fullname="ManiReports Demo", shortname="demo", installed_at=installed)],
    )
    plan.categories.write(writer)
    write_courses(writer, site)
    write_activities(writer, site)
    writer.insert("context", CONTEXT_COLUMNS, contexts.rows)
    if site.iomad:
        write_companies(writer, site)
    write_enrolments(writer, site)
    access = AccessTracker()
    simulator = ProgressSimulator(site, topic_rng(seed, "progress"), layout, access)
    progress = simulator.run()
    write_progress(writer, simulator)
    report(f"wrote site structure and progress; logging {total_logs:,} rows")

    def on_day(day: int, rows: int) -> None:
        report(f"log day {day}/{site.clock.days}: {rows:,} rows")

    LogSimulator(site, contexts, seed).run(writer, progress.bursts, access, total_logs, on_day)
    writer.insert("user", USER_COLUMNS, user_rows(site, access))
    if site.iomad:
        write_licences_and_email(writer, site, topic_rng(seed, "licences"), progress)


def _logins(site: DemoSite) -> list[DemoLogin]:
    logins = [DemoLogin("admin", "admin", DEMO_PASSWORD)]
    for company in site.companies:
        manager = site.person(company.manager_ids[0])
        logins.append(DemoLogin("companymanager", manager.username, DEMO_PASSWORD))
    logins.append(DemoLogin("teacher", DEMO_TEACHER, DEMO_PASSWORD))
    logins.append(DemoLogin("student", DEMO_STUDENT, DEMO_PASSWORD))
    return logins
