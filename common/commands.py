"""Services that take commands: `mr.cmd.<service>.<command>` dispatched to small handlers.

Every command service also answers `probe`, an end-to-end canary: it records the message id
as processed (once, however often it is delivered) after an optional hold, so operators and
tests can prove that a command went through the bus, a worker and the app DB.

A command whose payload names a `task` (the scheduler fires `{"task": name, "slot": n}`, the
scheduler page's "run now" `{"task": name, "trigger": "manual"}`) is a run of a scheduled task:
it is recorded in `manireports_task_runs` (`common.schedules.task_runs`), and after it the
site administrators are emailed if the task keeps failing or has recovered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg

from common.appdb import AppDB
from common.bus import ConsumerSpec, command_subject, message_id
from common.idempotency import already_processed, mark_processed
from common.mail.queue import dispatch_async
from common.moodle import MoodleSource
from common.schedules.task_runs import RecordedRun, alert_on_streak, recorded_task_async
from common.service import Consumption, RejectMessage, Worker

log = logging.getLogger(__name__)

CommandHandler = Callable[[dict[str, Any], Msg], Awaitable[None]]


class CommandWorker(Worker):
    max_deliver = 8

    def on_start_db(self) -> None:
        """Open the app DB; services that need more (a Moodle source) extend this."""
        self.appdb = AppDB(self.settings.database_url)

    async def on_start(self) -> None:
        self.on_start_db()

    async def on_stop(self) -> None:
        source = getattr(self, "_alert_source", None)
        if source is not None:
            source.dispose()
        self.appdb.dispose()

    def commands(self) -> dict[str, CommandHandler]:
        return {}

    def consumer_spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            stream="COMMANDS",
            durable=self.name,
            filter_subject=command_subject(self.name, ">"),
            ack_wait_s=float(self.settings.bus_ack_wait_s),
            max_deliver=self.max_deliver,
        )

    def consumptions(self) -> list[Consumption]:
        return [Consumption(self.consumer_spec(), handle=self.dispatch)]

    async def dispatch(self, payload: dict[str, Any], msg: Msg) -> None:
        command = msg.subject.rsplit(".", 1)[-1]
        handlers = {"probe": self.probe, **self.commands()}
        handler = handlers.get(command)
        if handler is None:
            raise RejectMessage(f"unknown command {command!r} for {self.name}")
        task = payload.get("task")
        if command == "probe" or not task:
            await handler(payload, msg)
            return
        await self._run_task(str(task), handler, payload, msg)

    async def _run_task(
        self, task: str, handler: CommandHandler, payload: dict[str, Any], msg: Msg
    ) -> None:
        """Run a scheduled task's command, recorded; then check whether to alert the admins."""
        trigger = "manual" if payload.get("trigger") == "manual" else "schedule"
        detail: dict[str, Any] = {"service": self.name, "delivery": _delivery(msg)}
        if "slot" in payload:
            detail["slot"] = payload["slot"]
        run: RecordedRun | None = None
        try:
            async with recorded_task_async(self.appdb, task, trigger, msg_id=_msg_id(msg),
                                           detail=detail) as run:  # fmt: skip
                if run.already_done:
                    log.info("%s: task %s already ran for this message", self.name, task)
                    return
                await handler(payload, msg)
        except asyncio.CancelledError:
            raise  # recorded as cancelled; no more waiting on a stopping service
        except BaseException:
            if run is not None:
                await self.check_task_alert(run.task)
            raise
        await self.check_task_alert(run.task)

    async def check_task_alert(self, task: str) -> None:
        """Email the site admins when the task's failures reached the alert threshold or it
        recovered; a failure here is logged, never the command's. Run after every recorded
        finish: here for task commands, by a service after its own `record_task_run`."""
        try:
            job_id = await asyncio.to_thread(alert_on_streak, self.appdb, self._moodle_source,
                                             self.settings, task)  # fmt: skip
            if job_id is not None:
                await dispatch_async(self.bus.publish, job_id)
        except Exception as exc:  # noqa: BLE001 - alerting must never fail the task's command
            log.error("%s: task %s: alert check failed: %s", self.name, task, exc)

    def _moodle_source(self) -> MoodleSource:
        """The site's Moodle DB, for the admins' addresses: opened the first time an alert
        is due (most services never need it)."""
        if getattr(self, "_alert_source", None) is None:
            self._alert_source = MoodleSource(self.settings.moodle_database_url,
                                              self.settings.moodle_prefix)  # fmt: skip
        return self._alert_source

    async def probe(self, payload: dict[str, Any], msg: Msg) -> None:
        msg_id = message_id(msg)
        if not msg_id:
            raise RejectMessage("probe without a message id")
        hold_s = float(payload.get("hold_s", 0))
        if hold_s:
            await asyncio.sleep(min(hold_s, 300))
        consumer = f"{self.name}.probe"
        await asyncio.to_thread(self._record_probe, consumer, msg_id)

    def _record_probe(self, consumer: str, msg_id: str) -> None:
        with self.appdb.transaction() as session:
            if not already_processed(session, consumer, msg_id):
                mark_processed(session, consumer, msg_id)


def _msg_id(msg: Msg) -> str | None:
    return message_id(msg) if getattr(msg, "headers", None) else None


def _delivery(msg: Msg) -> int:
    """Which delivery of the message this is (1 the first); 1 when the message has no
    JetStream metadata."""
    try:
        return int(msg.metadata.num_delivered) if msg.metadata else 1
    except Exception:  # noqa: BLE001 - not a JetStream message (a direct call)
        return 1
