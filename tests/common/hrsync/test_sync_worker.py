"""The sync service's `bamboohr` command: a real `sync` process on a real nats-server runs the
HR sync the admin page or the scheduler asked for; a redelivered command does not run twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from common.bus import MSG_ID_HEADER, Bus, command_subject
from common.models.hrsync import HrSyncRun
from common.models.ops import ProcessedMessage
from common.nats_server import EmbeddedNatsServer
from services.sync.worker import SyncWorker
from tests.support import service_env, wait_for


@pytest.fixture
def fresh_nats(tmp_path):
    server = EmbeddedNatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


def publish(url, subject, payload, msg_id):
    async def go():
        bus = await Bus.connect(url, name="test")
        await bus.ensure_streams()
        await bus.publish(subject, payload, msg_id=msg_id)
        await bus.close()

    asyncio.run(go())


def finished_runs(appdb):
    with appdb.transaction() as session:
        query = select(HrSyncRun).where(HrSyncRun.status != "running").order_by(HrSyncRun.id)
        return list(session.scalars(query))


def processed(appdb):
    with appdb.transaction() as session:
        query = select(ProcessedMessage.msg_id).where(ProcessedMessage.consumer == "hrsync")
        return sorted(session.scalars(query))


def hires(sync, count=2):
    at = datetime.now(UTC) - timedelta(hours=1)
    return [sync.bamboo.add_employee(f"P{i}", "Person", f"p{i}@acme.example", at=at)
            for i in range(count)]  # fmt: skip


def test_the_sync_service_runs_a_manual_sync(tmp_path, fresh_nats, sync, app_db_url,
                                             spawn_service):  # fmt: skip
    ids = hires(sync)
    env = service_env(tmp_path, fresh_nats.url, DATABASE_URL=app_db_url, **sync.env)
    spawn_service("sync", env)
    payload = {"dry_run": False, "trigger": "manual", "startedby": 7}
    publish(fresh_nats.url, command_subject("sync", "bamboohr"), payload, "hr-run-1")

    wait_for(lambda: finished_runs(sync.appdb), timeout_s=60, message="the run recorded")

    [run] = finished_runs(sync.appdb)
    assert (run.trigger, run.startedby, run.status, run.dry_run) == ("manual", 7, "ok", False)
    assert {u.idnumber for u in sync.moodle.users} == set(ids)
    assert processed(sync.appdb) == ["hr-run-1"]
    assert sync.cursor() is not None


def test_a_dry_run_command_and_a_configuration_error_are_recorded(sync, hr_settings):
    hires(sync)
    worker = SyncWorker(hr_settings, bus=None)  # type: ignore[arg-type]
    worker.on_start_db()
    try:
        # No settings stored and none in the environment: recorded, not retried.
        asyncio.run(worker.bamboohr({"trigger": "schedule"}, _message("hr-config")))
        [failed] = finished_runs(sync.appdb)
        assert (failed.status, failed.trigger) == ("error", "schedule")
        assert failed.error.startswith("configuration: BAMBOOHR_BASE_URL: not set")
        assert processed(sync.appdb) == ["hr-config"]
    finally:
        worker.appdb.dispose()


def test_a_redelivered_command_does_not_run_twice(sync, hr_settings, monkeypatch):
    hires(sync)
    for name, value in sync.env.items():
        monkeypatch.setenv(name, value)
    worker = SyncWorker(hr_settings, bus=None)  # type: ignore[arg-type]
    worker.on_start_db()
    try:
        message = _message("hr-once")
        asyncio.run(worker.bamboohr({"dry_run": True, "trigger": "manual"}, message))
        asyncio.run(worker.bamboohr({"dry_run": True, "trigger": "manual"}, message))
        [run] = finished_runs(sync.appdb)
        assert (run.dry_run, run.status, run.trigger) == (True, "ok", "manual")
        assert processed(sync.appdb) == ["hr-once"]
        assert sync.moodle.users == []
    finally:
        worker.appdb.dispose()


def _message(msg_id):
    async def in_progress():
        return None

    return SimpleNamespace(headers={MSG_ID_HEADER: msg_id}, in_progress=in_progress)
