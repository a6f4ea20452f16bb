"""A scheduler's world: the two-company Moodle site and a migrated app DB on the same database
server (SQLite files, and MariaDB when set), a nats-server of the test's own, and the helpers
that make schedules due and read what their runs left behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from common.access.viewer import load_viewer
from common.appdb import AppDB
from common.migrate import upgrade
from common.models.custom import ReportRun
from common.models.mail import CloudJob, CloudRecipient
from common.models.schedules import ReportSchedule, TaskRun
from common.moodle import MoodleSource
from common.nats_server import EmbeddedNatsServer
from common.schedules.store import Author, ScheduleInput, save_schedule
from common.templating import render
from common.tenancy import VIEW, scope_for
from tests.conftest import BOTH_DATABASES, _empty_database
from tests.factories.sites import Site, build_site
from tests.support import service_env


@dataclass
class World:
    site: Site
    appdb: AppDB
    source: MoodleSource
    nats: EmbeddedNatsServer
    tmp_path: Path

    def env(self, **extra: str) -> dict[str, str]:
        return service_env(self.tmp_path, self.nats.url, DATABASE_URL=self.appdb.url,
                           MOODLE_DATABASE_URL=self.site.url, SCHEDULER_LEASE_TTL_S="2",
                           # A run a killed process held comes back after this long.
                           BUS_ACK_WAIT_S="3", **extra)  # fmt: skip

    def author(self, name: str) -> Author:
        with self.appdb.transaction() as session:
            who = load_viewer(self.source, session, self.site.users[name])
        assert who is not None
        return Author(who, scope_for(who, None, VIEW))

    def schedule(self, by: str = "mgr_a", **changes: object) -> int:
        fields: dict[str, object] = {"title": "Progress", "report": "course_progress",
                                     "frequency": "daily", "at": "09:00", "tz": "UTC",
                                     "format": "csv", "emails": "boss@example.com"}  # fmt: skip
        data = ScheduleInput(**{**fields, **changes})  # type: ignore[arg-type]
        return save_schedule(self.appdb, self.source, data, self.author(by)).id

    def make_due(self, *ids: int, ago_s: float = 5) -> datetime:
        due = (datetime.now(UTC) - timedelta(seconds=ago_s)).replace(microsecond=0)
        with self.appdb.transaction() as session:
            session.execute(update(ReportSchedule).where(ReportSchedule.id.in_(ids))
                            .values(next_run_at=due))  # fmt: skip
        return due

    def row(self, schedule_id: int) -> ReportSchedule:
        with self.appdb.transaction() as session:
            found = session.get(ReportSchedule, schedule_id)
            assert found is not None
            session.expunge(found)
        return found

    def jobs_by_schedule(self) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        with self.appdb.transaction() as session:
            for job in session.scalars(select(CloudJob).where(CloudJob.type == "scheduled_report")):
                found.setdefault(int(json.loads(job.payload)["schedule"]), []).append(job.id)
        return found

    def task_runs(self, task: str) -> list[str]:
        with self.appdb.transaction() as session:
            query = select(TaskRun.status).where(TaskRun.task == task).order_by(TaskRun.id)
            return list(session.scalars(query))

    def alert_subjects(self) -> list[str]:
        """The site admins' task alerts, as their subjects read."""
        query = (select(CloudJob.subject_template, CloudJob.payload, CloudRecipient.recipient_data)
                 .join(CloudRecipient, CloudRecipient.jobid == CloudJob.id)
                 .where(CloudJob.type == "task_alert").order_by(CloudJob.id))  # fmt: skip
        with self.appdb.transaction() as session:
            rows = session.execute(query).all()
        return [render(subject, {**json.loads(payload).get("variables", {}), **json.loads(data)})
                for subject, payload, data in rows]  # fmt: skip

    def runs(self, schedule_id: int) -> list[ReportRun]:
        with self.appdb.transaction() as session:
            query = select(ReportRun).where(ReportRun.schedule_id == schedule_id)
            rows = list(session.scalars(query.order_by(ReportRun.id)))
            session.expunge_all()
        return rows


@pytest.fixture(params=BOTH_DATABASES)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with ExitStack() as stack:
        moodle_url = stack.enter_context(
            contextmanager(_empty_database)(request.param, tmp_path, "moodle"))  # fmt: skip
        app_url = stack.enter_context(
            contextmanager(_empty_database)(request.param, tmp_path, "app"))  # fmt: skip
        upgrade(app_url)
        appdb = AppDB(app_url)
        stack.callback(appdb.dispose)
        site = build_site(moodle_url)
        source = MoodleSource(site.url)
        stack.callback(source.dispose)
        nats = EmbeddedNatsServer(tmp_path / "nats").start()
        stack.callback(nats.stop)
        yield World(site, appdb, source, nats, tmp_path)
