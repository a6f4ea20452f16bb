"""The scheduler service: while it holds the leader lease, fires due tasks and due report
schedules as commands; every replica, leader or not, runs the report schedules' commands.

Report schedules: the leader publishes one `run_schedule` command per due slot
(`common.schedules.commands`), then moves the schedule on (`common.schedules.due`). A run that
fails is retried after `SCHEDULE_RETRY_BASE_S`, 2× and 4× that (a delayed redelivery of the
same command), then the schedule is marked failed with the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg

from common.bus import command_subject
from common.commands import CommandHandler, CommandWorker
from common.mail.queue import dispatch_command
from common.models.base import utcnow
from common.moodle import MoodleSource
from common.reports.runs import outcome_of
from common.schedules.commands import parse_due, run_command
from common.schedules.due import (
    DueSlot,
    advance,
    count_failure,
    due_schedules,
    retry_delay,
    start_manual_run,
)
from common.schedules.runner import RunRequest, execute
from common.schedules.task_runs import record_task_run
from common.service import Consumption, RejectMessage, RetryLater
from services.scheduler.lease import LeaderLease
from services.scheduler.tasks import PeriodicTask, tasks_with_intervals

log = logging.getLogger(__name__)

LEASE_BUCKET = "mr_leases"
SCHEDULES_TASK = "report_schedules"


class SchedulerWorker(CommandWorker):
    name = "scheduler"
    # Retries are counted on the schedule (3, then failed); the bus's own limit only has to
    # outlast them and a few crashes.
    max_deliver = 12

    async def on_start(self) -> None:
        await super().on_start()
        ttl = self.settings.scheduler_lease_ttl_s
        kv = await self.bus.key_value(LEASE_BUCKET, ttl_s=ttl)
        self.lease = LeaderLease(kv, "scheduler", self.instance)
        self.tasks = tasks_with_intervals(self.settings.task_intervals)
        self.last_slot: dict[str, int] = {}
        self.fired = 0
        self.schedules_published = 0
        self.schedule_runs = 0
        self._source: MoodleSource | None = None

    async def on_stop(self) -> None:
        await self.lease.release()
        if self._source is not None:
            self._source.dispose()
        await super().on_stop()

    @property
    def source(self) -> MoodleSource:
        if self._source is None:
            self._source = MoodleSource(
                self.settings.moodle_database_url, self.settings.moodle_prefix
            )
        return self._source

    async def background_tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self._lead()]

    def commands(self) -> dict[str, CommandHandler]:
        return {"run_schedule": self.run_schedule}

    def consumptions(self) -> list[Consumption]:
        # Several pull loops on the one durable consumer: runs wait on the databases, not
        # on this process's CPU.
        spec = self.consumer_spec()
        loops = self.settings.schedule_run_concurrency
        return [Consumption(spec, handle=self.dispatch) for _ in range(loops)]

    def health_details(self) -> dict[str, Any]:
        return {"leader": self.lease.held, "fired": self.fired,
                "schedules_published": self.schedules_published,
                "schedule_runs": self.schedule_runs}  # fmt: skip

    # -- the leader ---------------------------------------------------------------
    async def _lead(self) -> None:
        # Renew well inside the TTL so one slow tick does not lose the lease.
        tick_s = max(self.settings.scheduler_lease_ttl_s / 4, 0.25)
        while not self.stopping:
            try:
                if self.lease.held:
                    await self.lease.renew()
                elif await self.lease.try_acquire():
                    log.info("scheduler %s is now the leader", self.instance)
                if self.lease.held:
                    await self._fire_due(time.time())
                    await self._publish_due_schedules()
                    await self._fire_hr_sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the bus or a DB may be reconnecting
                log.warning("scheduler tick failed: %s", exc)
            await asyncio.sleep(tick_s)

    async def _fire_due(self, now: float) -> None:
        for task in self.tasks:
            slot = task.slot(now)
            if self.last_slot.get(task.name) == slot:
                continue
            await self._fire(task, slot)
            self.last_slot[task.name] = slot

    async def _fire(self, task: PeriodicTask, slot: int) -> None:
        subject = command_subject(task.service, task.command)
        await self.bus.publish(
            subject, {"task": task.name, "slot": slot}, msg_id=task.message_id(slot)
        )
        self.fired += 1
        log.info("fired %s (slot %d)", task.name, slot)

    async def _publish_due_schedules(self) -> None:
        now = datetime.now(UTC)
        for slot in await asyncio.to_thread(due_schedules, self.appdb, now):
            if not self.lease.held or self.stopping:
                return
            await self._publish_slot(slot, now)

    async def _publish_slot(self, slot: DueSlot, now: datetime) -> None:
        command = run_command(slot.schedule_id, slot.due)
        await self.bus.publish(command.subject, command.payload, msg_id=command.msg_id)
        # Published, then moved on: dying in between leaves the slot due, and the next
        # leader's publish carries the same id.
        await asyncio.to_thread(advance, self.appdb, slot, now)
        self.schedules_published += 1

    async def _fire_hr_sync(self) -> None:
        """The HR sync on its stored cron and zone: common/hrsync/schedule.py decides the due
        slot; a new leader's publish of a slot already fired is dropped as a duplicate."""
        from common.hrsync.schedule import HrSyncTrigger  # imported here: one edit, one place

        trigger = vars(self).setdefault("hr_sync_trigger", HrSyncTrigger())
        await trigger.tick(self.appdb, self.bus.publish, datetime.now(UTC))

    # -- every replica: running a schedule ------------------------------------------
    async def run_schedule(self, payload: dict[str, Any], msg: Msg) -> None:
        """Run one slot, recorded as a run of the `report_schedules` task too (its history,
        and the site admins' alert when runs keep failing)."""
        started = utcnow()
        try:
            failed_for_good = await self._run_schedule(payload, msg)
        except RetryLater as exc:
            await self._record_task(started, "error", str(exc))
            raise
        except RejectMessage:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, then redelivered as any failure
            await self._record_task(started, "error", outcome_of(exc)[1])
            raise
        if failed_for_good:
            await self._record_task(started, "error", failed_for_good)
        else:
            await self._record_task(started, "ok", None)

    async def _record_task(self, started: datetime, status: str, error: str | None) -> None:
        try:
            await asyncio.to_thread(record_task_run, self.appdb, SCHEDULES_TASK, "schedule",
                                    status, started, utcnow(), error)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the run's own outcome stands
            log.warning("report_schedules: run not recorded: %s", exc)
        await self.check_task_alert(SCHEDULES_TASK)

    async def _run_schedule(self, payload: dict[str, Any], msg: Msg) -> str | None:
        """Run the slot; the error when it failed for good (retries used up), else None."""
        request = _request(payload, msg)
        if request.manual and msg.metadata.num_delivered == 1:
            await asyncio.to_thread(start_manual_run, self.appdb, request.schedule_id)
        task = asyncio.ensure_future(
            asyncio.to_thread(execute, self.appdb, self.source, self.settings, request)
        )
        try:
            while not task.done():  # a long report: tell the bus it is still being worked on
                done, _ = await asyncio.wait(
                    {task}, timeout=max(1.0, self.settings.bus_ack_wait_s / 3)
                )
                if not done:
                    await msg.in_progress()
            outcome = task.result()
        except Exception as exc:  # noqa: BLE001 - every failure is counted and retried
            return await self._failed(request, exc)
        self.schedule_runs += 1
        if outcome.job_id is not None:
            dispatch = dispatch_command(outcome.job_id)
            try:
                await self.bus.publish(dispatch.subject, dispatch.payload, msg_id=dispatch.msg_id)
            except Exception as exc:  # noqa: BLE001 - the mailers' watcher dispatches it later
                log.warning("job %s: dispatch not published (%s)", outcome.job_id, exc)
        return None

    async def _failed(self, request: RunRequest, exc: BaseException) -> str:
        """Count the failure: RetryLater while retries remain, else the error (schedule
        marked failed)."""
        status, error = outcome_of(exc)
        text = f"{status}: {error}" if status == "timeout" else (error or status)
        count = await asyncio.to_thread(count_failure, self.appdb, request.schedule_id, text)
        if count.retry:
            delay = retry_delay(self.settings.schedule_retry_base_s, count.attempts)
            raise RetryLater(f"schedule {request.schedule_id} attempt {count.attempts}: {text}",
                             delay_s=delay)  # fmt: skip
        log.error("schedule %s: failed after %d attempts: %s", request.schedule_id,
                  count.attempts, text)  # fmt: skip
        return text


def _request(payload: dict[str, Any], msg: Msg) -> RunRequest:
    try:
        schedule_id = int(payload["schedule"])
        due = parse_due(str(payload["due"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise RejectMessage(f"run_schedule: bad payload ({exc})") from None
    manual = payload.get("manual")
    command = run_command(schedule_id, due, manual=str(manual) if manual else None)
    return RunRequest(schedule_id, due, command.msg_id, manual=bool(manual))
