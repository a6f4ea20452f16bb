"""The sync service: consumes `mr.cmd.sync.*` commands.

`bamboohr` ({"dry_run": bool, "trigger": "schedule"|"manual", "startedby": id|null}) runs one HR
sync (`common.hrsync.engine.run_sync`) in a thread, telling JetStream it is still being worked on
so a long run is not redelivered meanwhile. A redelivered message whose run was already recorded
(the message id marked processed with the run) is acked without running again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from typing import Any

from nats.aio.msg import Msg

from common.bus import message_id
from common.commands import CommandHandler, CommandWorker
from common.hrsync.engine import IDEMPOTENCY_CONSUMER, Summary, record_config_error, run_sync
from common.hrsync.settings import load_hr_settings
from common.idempotency import already_processed
from common.mail.queue import Publish
from common.settings import SettingsError

log = logging.getLogger(__name__)

TRIGGERS = ("schedule", "manual")
PUBLISH_TIMEOUT_S = 10.0


class SyncWorker(CommandWorker):
    name = "sync"

    def commands(self) -> dict[str, CommandHandler]:
        return {"bamboohr": self.bamboohr}

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
        task = asyncio.ensure_future(asyncio.to_thread(run))
        beat_s = max(1.0, self.settings.bus_ack_wait_s / 3)
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=beat_s)
            if not done:
                await msg.in_progress()
        summary = task.result()
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
