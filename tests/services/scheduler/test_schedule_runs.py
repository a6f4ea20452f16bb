"""Report schedules run by real scheduler processes over a real nats-server: each due slot runs
exactly once whatever dies when, a failing report is retried with growing delays and then
marked failed, and a scheduled XLSX reaches the SMTP sink with the rows each recipient may see.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

from openpyxl import load_workbook
from sqlalchemy import text

from common.bus import Bus
from common.idempotency import already_processed
from common.models.base import utcnow
from common.schedules.commands import manual_tag, run_command
from common.schedules.runner import CONSUMER
from tests.services.mailer.conftest import configure, smtp_config, wait_final
from tests.services.scheduler.conftest import World
from tests.support import wait_for

COMPANY_B_LEARNERS = {"Xena Learner", "Yuri Learner", "Zoe Learner"}


def publish(world: World, command) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        bus = await Bus.connect(world.nats.url, name="test")
        await bus.ensure_streams()
        try:
            await bus.publish(command.subject, command.payload, msg_id=command.msg_id)
        finally:
            await bus.close()

    asyncio.run(go())


def learners(content: bytes) -> set[str]:
    rows = list(load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
                .iter_rows(values_only=True))  # fmt: skip
    at = list(rows[0]).index("Learner")
    return {str(r[at]) for r in rows[1:] if r[at]}


def test_a_scheduled_xlsx_reaches_each_recipient_with_their_own_rows(world: World, smtp_sink,
                                                                      spawn_service):  # fmt: skip
    site = world.site
    configure(world.appdb, site.companies["A"], "smtp", smtp_config(smtp_sink))
    schedule_id = world.schedule(format="xlsx", users=[str(site.users["mgr_a"]),
                                                       str(site.users["dept_a"])])  # fmt: skip
    due = world.make_due(schedule_id)
    env = world.env()
    spawn_service("scheduler", env)
    spawn_service("mailer", env)
    [job_id] = wait_for(lambda: world.jobs_by_schedule().get(schedule_id), timeout_s=60)
    assert wait_final(world.appdb, job_id).status == "completed"

    def attached(address: str) -> bytes:
        [message] = smtp_sink.received(address)
        [part] = list(message.message.iter_attachments())
        assert part.get_filename().endswith(".xlsx")
        assert "Progress" in message.message["Subject"]
        return part.get_content()

    everyone_in_acme = {"Ana Learner", "Ben Learner", "Cara Learner", "Dan Learner"}
    assert learners(attached("boss@example.com")) == everyone_in_acme  # the author's scope
    assert learners(attached("mgr_a@example.com")) == everyone_in_acme
    assert learners(attached("dept_a@example.com")) == {"Ana Learner", "Ben Learner"}
    assert smtp_sink.recipients == {"boss@example.com", "mgr_a@example.com", "dept_a@example.com"}
    row = world.row(schedule_id)
    assert row.last_status == "ok" and row.next_run_at is not None and row.next_run_at > due


def test_every_due_slot_runs_once_through_a_dead_leader_and_two_schedulers(
    world: World, spawn_service
):
    ids = [world.schedule(title=f"Schedule {n}") for n in range(12)]
    due = world.make_due(*ids)
    # What a leader killed between publishing and moving the schedule on leaves behind: the
    # command on the bus, the slot still due.
    publish(world, run_command(ids[0], due))
    first = spawn_service("scheduler", world.env(SCHEDULE_RUN_CONCURRENCY="1"))
    wait_for(lambda: world.jobs_by_schedule() or None, timeout_s=60)
    first.kill()  # SIGKILL, wherever it is: publishing, moving on, rendering, queueing
    spawn_service("scheduler", world.env())
    spawn_service("scheduler", world.env())
    jobs = wait_for(lambda: (found := world.jobs_by_schedule()) and len(found) == len(ids)
                    and found, timeout_s=90)  # fmt: skip
    # Give a duplicate every chance to show up before counting.
    wait_for(lambda: all(world.row(i).next_run_at > due for i in ids), timeout_s=30)
    jobs = world.jobs_by_schedule()
    assert {i: len(j) for i, j in jobs.items()} == {i: 1 for i in ids}
    with world.appdb.transaction() as session:
        assert all(already_processed(session, CONSUMER, run_command(i, due).msg_id) for i in ids)


def test_a_failing_report_is_retried_with_growing_delays_then_failed_then_retried_by_hand(
    world: World, spawn_service
):
    schedule_id = world.schedule(by="admin", report="quiz_attempts", emails="ops@example.com")
    world.make_due(schedule_id)
    quiz = world.source.tables.quiz_attempts.name
    with world.site.moodle.engine.begin() as conn:  # the report's table is gone: runs fail
        conn.execute(text(f"ALTER TABLE {quiz} RENAME TO {quiz}_away"))
    spawn_service("scheduler", world.env(SCHEDULE_RETRY_BASE_S="0.5"))
    wait_for(lambda: world.row(schedule_id).last_status == "failed", timeout_s=60)
    runs = world.runs(schedule_id)
    assert [(r.attempt, r.status) for r in runs] == [(1, "error"), (2, "error"), (3, "error"),
                                                     (4, "error")]  # fmt: skip
    starts = [r.started_at.timestamp() for r in runs]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps[0] >= 0.4 and gaps[1] > gaps[0] and gaps[2] > gaps[1], gaps
    row = world.row(schedule_id)
    assert row.attempts == 4 and row.failed_error and quiz in row.failed_error
    assert world.jobs_by_schedule() == {}
    # Each attempt is a failed run of the report_schedules task; at the third in a row the
    # site admins were emailed, once.
    assert world.task_runs("report_schedules") == ["error"] * 4
    assert world.alert_subjects() == ["ManiReports: task report_schedules failed 3 times in a row"]

    with world.site.moodle.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {quiz}_away RENAME TO {quiz}"))
    publish(world, run_command(schedule_id, row.last_run_at or utcnow(), manual=manual_tag()))
    wait_for(lambda: world.row(schedule_id).last_status == "ok", timeout_s=60)
    assert len(world.jobs_by_schedule()[schedule_id]) == 1
    fixed = world.row(schedule_id)
    assert (fixed.attempts, fixed.failed_error) == (0, None)
    assert world.runs(schedule_id)[-1].status == "ok"
    assert world.task_runs("report_schedules") == ["error"] * 4 + ["ok"]
    wait_for(lambda: len(world.alert_subjects()) == 2, timeout_s=10)
    assert world.alert_subjects()[1] == "ManiReports: task report_schedules recovered"
    assert fixed.last_run_at is not None and fixed.last_run_at <= datetime.now(UTC)
