"""The aggregator's side of issue 12: its retention_cleanup command runs the retention (and
audits it), and with TIME_TRACKING_ENABLED=false heartbeats still queued are not stored."""

import asyncio
import json
from datetime import timedelta

from sqlalchemy import func, select

from common.bus import Bus
from common.migrate import upgrade
from common.models.access import AuditLog
from common.models.analytics import UsertimeSession
from common.models.base import utcnow
from common.retention import AUDIT_ACTION
from services.aggregator.worker import AggregatorWorker
from tests.factories.sites import NOW
from tests.support import make_settings


class Delivery:
    async def in_progress(self) -> None:
        pass


async def with_worker(settings, run):  # type: ignore[no-untyped-def]
    bus = await Bus.connect(settings.nats_url, "test-aggregator-12")
    worker = AggregatorWorker(settings, bus)
    worker.on_start_db()
    try:
        await run(worker)
        return worker
    finally:
        await worker.on_stop()
        await bus.close()


def sessions(worker) -> int:  # type: ignore[no-untyped-def]
    with worker.appdb.transaction() as db:
        return int(db.scalar(select(func.count()).select_from(UsertimeSession)) or 0)


def test_retention_cleanup_command_removes_expired_rows(site, tmp_path, nats_server):
    settings = make_settings(tmp_path, MOODLE_DATABASE_URL=site.url, NATS_URL=nats_server.url,
                             RETENTION_HEARTBEAT_DAYS="30")  # fmt: skip
    upgrade(settings.database_url)
    old, recent = utcnow() - timedelta(days=31), utcnow() - timedelta(days=29)

    async def run(worker):  # type: ignore[no-untyped-def]
        with worker.appdb.transaction() as db:
            for start in (old, recent):
                db.add(UsertimeSession(userid=3, courseid=4, sessionstart=start, lastbeat=start))
        await worker.commands()["retention_cleanup"]({}, Delivery())

    worker = asyncio.run(with_worker(settings, run))
    with worker.appdb.transaction() as db:
        assert list(db.scalars(select(UsertimeSession.lastbeat))) == [recent]
        entry = db.scalars(select(AuditLog).where(AuditLog.action == AUDIT_ACTION)).one()
    assert json.loads(entry.details or "{}")["removed"]["manireports_usertime_sessions"] == 1


def beat(n: int, user: int, course: int):  # type: ignore[no-untyped-def]
    return ({"id": f"beat-{n:04d}", "u": user, "c": course, "m": 0, "t": int(NOW) + n}, None)


def test_heartbeats_are_not_stored_while_tracking_is_off(site, tmp_path, nats_server):
    user, course = site.users["ana"], site.courses["Fire Safety"]
    for enabled, stored in (("false", 0), ("true", 1)):
        (tmp_path / enabled).mkdir()
        settings = make_settings(tmp_path / enabled, MOODLE_DATABASE_URL=site.url,
                                 NATS_URL=nats_server.url,
                                 TIME_TRACKING_ENABLED=enabled)  # fmt: skip
        upgrade(settings.database_url)

        async def run(worker):  # type: ignore[no-untyped-def]
            await worker.apply_heartbeats([beat(1, user, course), beat(2, user, course)])

        worker = asyncio.run(with_worker(settings, run))
        assert sessions(worker) == stored, f"TIME_TRACKING_ENABLED={enabled}"
