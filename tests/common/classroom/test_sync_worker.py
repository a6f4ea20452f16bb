"""The sync service's `classroom` and `unenroll` commands, as the scheduler sends them: a real
`sync` process on a real nats-server syncs the Classroom rosters; the worker's commands record
the task's runs (a Classroom nobody configured is a skipped run, not a failure; a configuration
error is the run's failure), park and later place an unmapped person, and a live auto-unenroll
removes the candidates from the local Classroom through the stored-config remover."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from common.bus import MSG_ID_HEADER, Bus, command_subject
from common.classroom.config import add_course
from common.models.access import AuditLog
from common.models.identity import IdentityMapping, ParkedIdentity
from common.models.schedules import TaskRun
from common.nats_server import EmbeddedNatsServer
from common.service import RejectMessage
from common.settings import Settings
from common.unenroll.policy import save_policy
from services.sync.worker import SyncWorker
from tests.common.unenroll.lab import build_lab
from tests.factories.sites import DAY, Site
from tests.fakes.classroom_server import ClassroomServer
from tests.support import make_settings, service_env, wait_for

LIVE_POLICY = {
    "enabled": "1",
    "dry_run": "",
    "grace_days": "7",
    "max_remove_share": "20%",
    "sources": "",
    "protected_domains": "staff.example",
    "protected_emails": "boss@school.example",
}


class Lab:
    """The unenroll lab course (people last seen relative to the real clock: the worker runs
    at time.time()), its people mapped, and a Classroom course mapped on the page."""

    def __init__(self, site: Site, app_db_url: str, tmp_path: Path) -> None:
        self.now = int(time.time())
        self.built = build_lab(site, app_db_url, now=self.now)
        la = self.built.moodle.tables["user_lastaccess"]
        with site.moodle.engine.begin() as connection:  # the real clock moves on meanwhile
            connection.execute(la.update().where(la.c.userid == self.built.users["edge"])
                               .values(timeaccess=self.now - DAY))  # fmt: skip
        self.site, self.course, self.appdb = site, self.built.course, self.built.appdb
        self.settings: Settings = make_settings(
            tmp_path, DATABASE_URL=app_db_url, MOODLE_DATABASE_URL=site.url
        )
        emails = self.emails()
        with self.appdb.transaction() as s:
            for user_id, email in emails.items():
                if not email.startswith("nina"):  # Nina has no mapping: parked
                    s.add(IdentityMapping(source="moodle", lms_user_id=str(user_id),
                                          google_email=email.lower()))  # fmt: skip

    def emails(self) -> dict[int, str]:
        u = self.built.moodle.tables.user
        ids = list(self.built.users.values())
        with self.built.moodle.engine.connect() as c:
            return {int(r.id): str(r.email) for r in c.execute(
                select(u.c.id, u.c.email).where(u.c.id.in_(ids)))}  # fmt: skip

    def map_course(self, classroom_id: str) -> None:
        with self.appdb.transaction() as s:
            add_course(s, self.course, classroom_id, moodle_course_name="Unenroll Lab",
                       actor_id=None, ip=None)  # fmt: skip

    def task_runs(self, task: str) -> list[TaskRun]:
        with self.appdb.transaction() as s:
            query = select(TaskRun).where(TaskRun.task == task).order_by(TaskRun.id)
            return list(s.scalars(query))

    def audited(self, action: str) -> list[dict[str, Any]]:
        with self.appdb.transaction() as s:
            rows = s.scalars(select(AuditLog).where(AuditLog.action == action)
                             .order_by(AuditLog.id))  # fmt: skip
            return [json.loads(r.details or "{}") | {"_outcome": r.outcome} for r in rows]

    def parked(self) -> list[tuple[str, bool]]:
        with self.appdb.transaction() as s:
            rows = s.scalars(select(ParkedIdentity).order_by(ParkedIdentity.id))
            return [(r.lms_user_id, r.resolved_at is None) for r in rows]


@pytest.fixture
def lab(site: Site, app_db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    built = Lab(site, app_db_url, tmp_path)
    yield built
    built.built.moodle.dispose()
    built.appdb.dispose()


@pytest.fixture
def endpoint(classroom_server: ClassroomServer, monkeypatch: pytest.MonkeyPatch) -> ClassroomServer:
    monkeypatch.setenv("CLASSROOM_API_ENDPOINT", classroom_server.base_url)
    monkeypatch.setenv("GOOGLE_WORKSPACE_DOMAINS", "school.example,staff.example")
    monkeypatch.delenv("UNENROLL_REMOVER", raising=False)
    monkeypatch.delenv("CLASSROOM_COURSE_MAP", raising=False)
    return classroom_server


def _message(command: str, msg_id: str) -> Any:
    async def in_progress() -> None:
        return None

    return SimpleNamespace(subject=command_subject("sync", command), metadata=None,
                           headers={MSG_ID_HEADER: msg_id}, in_progress=in_progress)  # fmt: skip


def dispatch(lab: Lab, command: str, payload: dict[str, Any], msg_id: str) -> None:
    """One command through the worker's dispatch, as the consumer hands it over."""
    worker = SyncWorker(lab.settings, bus=None)  # type: ignore[arg-type]
    worker.on_start_db()
    try:
        asyncio.run(worker.dispatch(payload, _message(command, msg_id)))
    finally:
        asyncio.run(worker.on_stop())


def test_the_sync_service_runs_a_scheduled_classroom_sync(  # type: ignore[no-untyped-def]
    lab, endpoint, tmp_path, spawn_service
) -> None:
    nats = EmbeddedNatsServer(tmp_path / "nats").start()
    try:
        endpoint.add_course("gc-lab", teachers=("owner@school.example",))
        lab.map_course("gc-lab")
        env = service_env(tmp_path, nats.url, DATABASE_URL=lab.appdb.url,
                          MOODLE_DATABASE_URL=lab.site.url,
                          CLASSROOM_API_ENDPOINT=endpoint.base_url,
                          GOOGLE_WORKSPACE_DOMAINS="school.example,staff.example")  # fmt: skip
        spawn_service("sync", env)

        async def publish() -> None:
            bus = await Bus.connect(nats.url, name="test")
            await bus.ensure_streams()
            await bus.publish(
                command_subject("sync", "classroom"),
                {"task": "classroom_sync", "slot": 1},
                msg_id="classroom-1",
            )
            await bus.close()

        asyncio.run(publish())
        wait_for(lambda: [r for r in lab.task_runs("classroom_sync") if r.status != "running"],
                 timeout_s=60, message="the classroom_sync run recorded")  # fmt: skip
    finally:
        nats.stop()
    [run] = lab.task_runs("classroom_sync")
    assert (run.status, run.trigger, run.error) == ("ok", "schedule", None)
    mapped = {e.lower() for e in lab.emails().values()} - {"nina@school.example"}
    assert endpoint.students("gc-lab") == mapped
    assert endpoint.teachers("gc-lab") == {"owner@school.example"}
    [event] = lab.audited("classroom_sync")
    assert (event["trigger"], event["added"], event["parked"]) == ("schedule", len(mapped), 1)


def test_a_parked_person_is_placed_by_the_next_run_after_a_mapping(lab, endpoint) -> None:  # type: ignore[no-untyped-def]
    endpoint.add_course("gc-lab")
    lab.map_course("gc-lab")
    nina = lab.built.users["never"]
    dispatch(lab, "classroom", {"task": "classroom_sync", "trigger": "manual"}, "c-1")
    assert lab.parked() == [(str(nina), True)]
    assert "nina@school.example" not in endpoint.students("gc-lab")

    with lab.appdb.transaction() as s:
        s.add(IdentityMapping(source="moodle", lms_user_id=str(nina),
                              google_email="nina@school.example"))  # fmt: skip
    payload = {"task": "classroom_sync", "trigger": "import", "courses": [lab.course]}
    dispatch(lab, "classroom", payload, "c-2")
    assert "nina@school.example" in endpoint.students("gc-lab")
    assert lab.parked() == [(str(nina), False)]
    runs = lab.task_runs("classroom_sync")
    assert [(r.status, r.trigger) for r in runs] == [("ok", "manual"), ("ok", "schedule")]
    assert [e["trigger"] for e in lab.audited("classroom_sync")] == ["manual", "import"]


def test_not_configured_is_a_skipped_run_and_a_bad_configuration_a_failed_one(  # type: ignore[no-untyped-def]
    lab, classroom_server, monkeypatch
) -> None:
    for name in (
        "CLASSROOM_API_ENDPOINT",
        "CLASSROOM_SERVICE_ACCOUNT_FILE",
        "CLASSROOM_COURSE_MAP",
    ):
        monkeypatch.delenv(name, raising=False)
    dispatch(lab, "classroom", {"task": "classroom_sync", "slot": 1}, "c-skip")
    [run] = lab.task_runs("classroom_sync")
    assert (run.status, run.error) == ("ok", None)
    assert lab.audited("classroom_sync") == []

    monkeypatch.setenv("CLASSROOM_API_ENDPOINT", classroom_server.base_url)
    monkeypatch.setenv("CLASSROOM_COURSE_MAP", "not-a-pair")
    with pytest.raises(RejectMessage, match="configuration: CLASSROOM_COURSE_MAP"):
        dispatch(lab, "classroom", {"task": "classroom_sync", "slot": 2}, "c-bad")
    failed = lab.task_runs("classroom_sync")[-1]
    assert failed.status == "error" and "CLASSROOM_COURSE_MAP" in (failed.error or "")
    assert classroom_server.api_requests() == []


def test_a_live_unenroll_command_removes_through_the_stored_config_remover(  # type: ignore[no-untyped-def]
    lab, endpoint
) -> None:
    roster = {e.lower() for e in lab.emails().values()}
    endpoint.add_course("gc-lab", students=roster)
    lab.map_course("gc-lab")
    with lab.appdb.transaction() as s:
        save_policy(s, LIVE_POLICY, actor_id=None, via="test")

    dispatch(lab, "unenroll", {"task": "auto_unenroll", "slot": 1}, "u-1")

    assert endpoint.students("gc-lab") == roster - {"olga@school.example", "nina@school.example"}
    deletes = sorted(r.path for r in endpoint.api_requests() if r.method == "DELETE")
    assert deletes == [
        "/v1/courses/gc-lab/students/nina@school.example",
        "/v1/courses/gc-lab/students/olga@school.example",
    ]
    logged = lab.audited("auto_unenroll")
    assert sorted(e["email"] for e in logged) == ["nina@school.example", "olga@school.example"]
    assert {(e["via"], e["_outcome"]) for e in logged} == {("schedule", "success")}
    [run] = lab.task_runs("auto_unenroll")
    assert run.status == "ok"


def test_a_live_unenroll_without_a_classroom_fails_the_run_and_removes_no_one(  # type: ignore[no-untyped-def]
    lab, classroom_server, monkeypatch
) -> None:
    for name in ("CLASSROOM_API_ENDPOINT", "UNENROLL_REMOVER", "CLASSROOM_COURSE_MAP"):
        monkeypatch.delenv(name, raising=False)
    with lab.appdb.transaction() as s:
        save_policy(s, LIVE_POLICY, actor_id=None, via="test")
    with pytest.raises(RejectMessage, match="no Classroom remover is configured"):
        dispatch(lab, "unenroll", {"task": "auto_unenroll", "trigger": "manual"}, "u-none")
    [run] = lab.task_runs("auto_unenroll")
    assert (run.status, run.trigger) == ("error", "manual")
    assert lab.audited("auto_unenroll") == []
