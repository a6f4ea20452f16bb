"""The aggregator service: turns raw activity into the figures dashboards read.

Heartbeats arrive on the HEARTBEATS work queue and are merged in batches; everything else is a
command (`mr.cmd.aggregator.<name>`), fired by the scheduler or by an admin, that runs one job
of `services.aggregator.jobs` in a thread so the bus loop keeps acking.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from nats.aio.msg import Msg

from common.analytics.heartbeats import SUBJECT, Beat, apply_beats, beats_in
from common.analytics.risk_notify import notify_after_scoring
from common.bus import ConsumerSpec
from common.commands import CommandHandler, CommandWorker
from common.idempotency import forget_processed_before
from common.metrics import HEARTBEATS_APPLIED
from common.models.base import utcnow
from common.moodle import MoodleSource
from common.retention import run_retention
from common.service import Consumption
from services.aggregator.jobs import Jobs
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
        self._jobs: Jobs | None = None
        self._source: MoodleSource | None = None
        # One scoring run at a time: the scheduled one and the one a first cache build starts.
        self._scoring = asyncio.Lock()

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

    async def on_stop(self) -> None:
        if self._source is not None:
            self._source.dispose()
        await super().on_stop()

    @property
    def jobs(self) -> Jobs:
        if self._jobs is None:
            self._source = MoodleSource(
                self.settings.moodle_database_url, self.settings.moodle_prefix
            )
            self._jobs = Jobs(self.settings, self.appdb, self._source)
        return self._jobs

    def commands(self) -> dict[str, CommandHandler]:
        return {
            "retention_cleanup": self.retention_cleanup,
            "estimate_time": self._job(lambda p: self.jobs.estimate_time()),
            "scorm_summary": self._job(lambda p: self.jobs.scorm_summary(bool(p.get("full")))),
            "engagement": self._job(lambda p: self.jobs.engagement(p.get("now"))),
            "risk_scores": self.risk_scores,
            "refresh_caches": self.refresh_caches,
            "preaggregate": self._job(lambda p: self.jobs.preaggregate(p.get("now"))),
        }

    def health_details(self) -> dict[str, Any]:
        runs = self._jobs.last_runs if self._jobs else {}
        return {"beats_applied": self.beats_applied, "jobs": runs}

    def _job(self, run: Callable[[dict[str, Any]], object]) -> CommandHandler:
        """A command running `run(payload)` in a thread, telling JetStream it is still being
        worked on so a long job (a first full log estimate) is not redelivered meanwhile."""

        async def handle(payload: dict[str, Any], msg: Msg) -> None:
            task = asyncio.ensure_future(asyncio.to_thread(run, payload))
            beat_s = max(1.0, self.settings.bus_ack_wait_s / 3)
            while not task.done():
                done, _ = await asyncio.wait({task}, timeout=beat_s)
                if not done:
                    await msg.in_progress()
            task.result()

        return handle

    async def risk_scores(self, payload: dict[str, Any], msg: Msg) -> None:
        async with self._scoring:
            await self._score(payload, msg)

    async def _score(self, payload: dict[str, Any], msg: Msg) -> None:
        await self._job(lambda p: self.jobs.risk_scores(p.get("now")))(payload, msg)
        jobs = self.jobs
        await notify_after_scoring(self.bus, self.appdb, jobs.source, self.settings)

    async def refresh_caches(self, payload: dict[str, Any], msg: Msg) -> None:
        """The caches, after the first scoring run: the scheduler fires both at start, and a
        dashboard built before any score exists would read as "0 flagged" until its next
        refresh. So the first build scores first (or waits for the scoring under way)."""
        if not await asyncio.to_thread(self.jobs.scored):
            async with self._scoring:
                if not await asyncio.to_thread(self.jobs.scored):
                    await self._score({"now": payload.get("now")}, msg)
        await self._job(lambda p: self.jobs.refresh_caches(p.get("now")))(payload, msg)

    async def apply_heartbeats(self, batch: list[tuple[dict[str, Any], Msg]]) -> None:
        if not self.settings.time_tracking_enabled:
            # Tracking was turned off: beats still queued are dropped (acked), never stored.
            log.warning("aggregator: time tracking is off; dropping %d heartbeats", len(batch))
            return
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
        HEARTBEATS_APPLIED.inc(len(beats))

    async def retention_cleanup(self, payload: dict[str, Any], msg: Msg) -> None:
        await asyncio.to_thread(self._forget_old_messages)
        await asyncio.to_thread(run_retention, self.appdb, self.settings)

    def _forget_old_messages(self) -> None:
        # Redeliveries come within minutes; a week of ids is a wide margin.
        with self.appdb.transaction() as session:
            forget_processed_before(session, utcnow() - PROCESSED_RETENTION)
