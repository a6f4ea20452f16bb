"""The aggregator service: turns raw activity into the figures dashboards read.

Heartbeats arrive on the HEARTBEATS work queue and are merged in batches; everything else is a
command (`mr.cmd.aggregator.<name>`), fired by the scheduler or by an admin, that runs one job
of `services.aggregator.jobs` in a thread so the bus loop keeps acking.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from nats.aio.msg import Msg

from common.analytics.heartbeats import SUBJECT, Beat, apply_beats, beats_in
from common.bus import ConsumerSpec
from common.commands import CommandHandler, CommandWorker
from common.idempotency import forget_processed_before
from common.models.base import utcnow
from common.service import Consumption
from services.aggregator.storage import open_appdb

log = logging.getLogger(__name__)

PROCESSED_RETENTION = timedelta(days=7)
HEARTBEAT_BATCH = 500


def heartbeat_consumer(ack_wait_s: float) -> ConsumerSpec:
    return ConsumerSpec(
        stream="HEARTBEATS",
        durable="aggregator-heartbeats",
        filter_subject=SUBJECT,
        ack_wait_s=ack_wait_s,
        max_ack_pending=4 * HEARTBEAT_BATCH,
    )


class AggregatorWorker(CommandWorker):
    name = "aggregator"

    def on_start_db(self) -> None:
        self.appdb = open_appdb(self.settings.database_url)
        self.beats_applied = 0

    def consumptions(self) -> list[Consumption]:
        beats = Consumption(
            heartbeat_consumer(float(self.settings.bus_ack_wait_s)),
            handle_batch=self.apply_heartbeats,
            batch_size=HEARTBEAT_BATCH,
            fetch_wait_s=0.5,
            # A transaction per batch: fuller batches cost less per beat.
            linger_s=0.25,
        )
        return [*super().consumptions(), beats]

    def commands(self) -> dict[str, CommandHandler]:
        return {"retention_cleanup": self.retention_cleanup}

    def health_details(self) -> dict[str, Any]:
        return {"beats_applied": self.beats_applied}

    async def apply_heartbeats(self, batch: list[tuple[dict[str, Any], Msg]]) -> None:
        beats: list[Beat] = []
        for payload, _msg in batch:
            found, problems = beats_in(payload)
            beats += found
            for problem in problems:
                # Acked with the batch: a malformed beat never becomes applicable.
                log.error("aggregator: dropping a malformed heartbeat: %s", problem)
        if beats:
            await asyncio.to_thread(self._apply_beats, beats)

    def _apply_beats(self, beats: list[Beat]) -> None:
        with self.appdb.transaction() as session:
            apply_beats(session, beats, self.settings.heartbeat_timeout_s)
        self.beats_applied += len(beats)

    async def retention_cleanup(self, payload: dict[str, Any], msg: Msg) -> None:
        await asyncio.to_thread(self._forget_old_messages)

    def _forget_old_messages(self) -> None:
        # Redeliveries come within minutes; a week of ids is a wide margin.
        with self.appdb.transaction() as session:
            forget_processed_before(session, utcnow() - PROCESSED_RETENTION)
