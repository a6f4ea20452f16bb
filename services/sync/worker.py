"""The sync service: consumes `mr.cmd.sync.*` commands.

`bamboohr` ({"dry_run": bool, "trigger": "schedule"|"manual", "startedby": id|null}) runs one HR
sync (`common.hrsync.engine.run_sync`) in a thread, telling JetStream it is still being worked on
so a long run is not redelivered meanwhile. A redelivered message whose run was already recorded
(the message id marked processed with the run) is acked without running again.

`classroom` ({"task": "classroom_sync", "trigger": "schedule"|"manual"|"import", "courses": [Moodle
course ids, optional]}) runs one Classroom roster sync (`common.classroom.run`); `unenroll`
({"task": "auto_unenroll", "trigger": ...}) one auto-unenroll run under the stored policy, a live
one removing through the configured Remover. Both run in a thread with the same beats. A
configuration error, failed Classroom calls or a stopped unenroll run end the command as a
failure the task run records (terminated, not redelivered: the next run tries again); a Classroom
that nobody configured is a skipped sync, not a failure.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from nats.aio.msg import Msg

from common.bus import message_id
from common.classroom.run import counts_line, run_classroom_sync
from common.classroom.sync import SyncSummary
from common.commands import CommandHandler, CommandWorker
from common.hrsync.engine import IDEMPOTENCY_CONSUMER, Summary, record_config_error, run_sync
from common.hrsync.settings import load_hr_settings
from common.idempotency import already_processed
from common.mail.queue import Publish
from common.schedules.task_runs import one_line
from common.service import RejectMessage
from common.settings import SettingsError
from common.unenroll.policy import load_policy
from common.unenroll.run import RunSummary, configured_remover, run_policy

log = logging.getLogger(__name__)

TRIGGERS = ("schedule", "manual")
CLASSROOM_TRIGGERS = ("schedule", "manual", "import")
PUBLISH_TIMEOUT_S = 10.0
T = TypeVar("T")


class SyncWorker(CommandWorker):
    name = "sync"

    def commands(self) -> dict[str, CommandHandler]:
        return {"bamboohr": self.bamboohr, "classroom": self.classroom, "unenroll": self.unenroll}

    async def _in_thread(self, work: Callable[[], T], msg: Msg) -> T:
        """``work``'s result, run in a thread while JetStream is told every third of the ack
        wait that the message is still being worked on (so it is not redelivered meanwhile)."""
        task = asyncio.ensure_future(asyncio.to_thread(work))
        beat_s = max(1.0, self.settings.bus_ack_wait_s / 3)
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=beat_s)
            if not done:
                await msg.in_progress()
        return task.result()

    async def bamboohr(self, payload: dict[str, Any], msg: Msg) -> None:
        msg_id = message_id(msg) if getattr(msg, "headers", None) else None
        if await asyncio.to_thread(self._already_ran, msg_id):
            log.info("sync: HR sync already ran for message %s", msg_id)
            return
        loop = asyncio.get_running_loop()

        def publish(
            subject: str, payload: Mapping[str, Any], *, msg_id: str | None = None
        ) -> object:
            """The summary mail's dispatch, from the run's thread through this loop's bus."""
            sent = self.bus.publish(subject, payload, msg_id=msg_id)
            return asyncio.run_coroutine_threadsafe(sent, loop).result(PUBLISH_TIMEOUT_S)

        run = functools.partial(self._run_bamboohr, payload, msg_id, publish)
        summary = await self._in_thread(run, msg)
        log.info("sync: HR sync run %s: %s", summary.run_id, summary.status)

    def _already_ran(self, msg_id: str | None) -> bool:
        if not msg_id:
            return False
        with self.appdb.transaction() as session:
            return already_processed(session, IDEMPOTENCY_CONSUMER, msg_id)

    def _run_bamboohr(
        self, payload: dict[str, Any], msg_id: str | None, publish: Publish
    ) -> Summary:
        dry_run = bool(payload.get("dry_run"))
        trigger = str(payload.get("trigger")) if payload.get("trigger") in TRIGGERS else "schedule"
        startedby = payload.get("startedby")
        startedby = int(startedby) if isinstance(startedby, int) else None
        try:
            hr = load_hr_settings(self.appdb, self.settings)
            hr.require_connection()
        except SettingsError as exc:
            # Recorded (and mailed), not retried: a redelivery would fail the same way.
            log.error("sync: HR sync not started: configuration: %s", exc)
            return record_config_error(
                self.appdb,
                self.settings,
                str(exc),
                dry_run=dry_run,
                trigger=trigger,
                startedby=startedby,
                msg_id=msg_id,
                publish=publish,
            )
        return run_sync(
            self.appdb,
            self.settings,
            hr,
            dry_run=dry_run,
            trigger=str(trigger),
            startedby=startedby,
            msg_id=msg_id,
            publish=publish,
        )

    # --- Classroom roster sync and auto-unenroll ----------------------------------------------
    async def classroom(self, payload: dict[str, Any], msg: Msg) -> None:
        summary = await self._in_thread(functools.partial(self._run_classroom, payload), msg)
        if summary.errors:
            first = summary.errors[0]
            raise RejectMessage(
                f"classroom sync: {len(summary.errors)} failed: course {first.get('course_id')}: "
                + one_line(str(first.get("error")), 300)
            )

    def _run_classroom(self, payload: dict[str, Any]) -> SyncSummary:
        trigger = payload.get("trigger")
        trigger = str(trigger) if trigger in CLASSROOM_TRIGGERS else "schedule"
        raw = payload.get("courses")
        courses = None
        if isinstance(raw, list):
            courses = [int(c) for c in raw if isinstance(c, int) and not isinstance(c, bool)]
        startedby = payload.get("startedby")
        try:
            summary = run_classroom_sync(
                self.appdb, self._moodle_source(), self.settings, now=time.time(),
                courses=courses, trigger=trigger,
                actor_id=startedby if isinstance(startedby, int) else None,
            )  # fmt: skip
        except SettingsError as exc:
            # Recorded as the task's failure, not retried: a redelivery would fail the same way.
            log.error("sync: Classroom sync not started: configuration: %s", exc)
            raise RejectMessage(f"configuration: {exc}") from None
        log.info("sync: Classroom sync (%s): %s", trigger, counts_line(summary))
        return summary

    async def unenroll(self, payload: dict[str, Any], msg: Msg) -> None:
        summary = await self._in_thread(functools.partial(self._run_unenroll, payload), msg)
        if summary.stopped:
            raise RejectMessage(f"auto-unenroll stopped: {one_line(summary.stopped, 300)}")
        if summary.failed:
            first = summary.errors[0]
            raise RejectMessage(
                f"auto-unenroll: {summary.failed} removals failed: {first['email']}: "
                + one_line(str(first["error"]), 300)
            )

    def _run_unenroll(self, payload: dict[str, Any]) -> RunSummary:
        via = "manual" if payload.get("trigger") == "manual" else "schedule"
        try:
            with self.appdb.transaction() as session:
                policy = load_policy(session)
            live = policy.enabled and not policy.dry_run
            # Only a live run needs the Classroom: a dry run works without it being set up.
            remover = configured_remover(appdb=self.appdb, settings=self.settings) if live else None
            summary = run_policy(self.appdb, self._moodle_source(), now=time.time(),
                                 remover=remover, via=via, policy=policy)  # fmt: skip
        except SettingsError as exc:
            log.error("sync: auto-unenroll not started: configuration: %s", exc)
            raise RejectMessage(f"configuration: {exc}") from None
        log.info("sync: auto-unenroll (%s): %s", via, summary.as_dict())
        return summary
