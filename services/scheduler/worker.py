"""The scheduler service: while it holds the leader lease, fires due tasks as commands."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from common.bus import command_subject
from common.service import Worker
from services.scheduler.lease import LeaderLease
from services.scheduler.tasks import PeriodicTask, tasks_with_intervals

log = logging.getLogger(__name__)

LEASE_BUCKET = "mr_leases"


class SchedulerWorker(Worker):
    name = "scheduler"

    async def on_start(self) -> None:
        ttl = self.settings.scheduler_lease_ttl_s
        kv = await self.bus.key_value(LEASE_BUCKET, ttl_s=ttl)
        self.lease = LeaderLease(kv, "scheduler", self.instance)
        self.tasks = tasks_with_intervals(self.settings.task_intervals)
        self.last_slot: dict[str, int] = {}
        self.fired = 0

    async def on_stop(self) -> None:
        await self.lease.release()

    async def background_tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self._lead()]

    def health_details(self) -> dict[str, Any]:
        return {"leader": self.lease.held, "fired": self.fired}

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
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the bus may be reconnecting
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
