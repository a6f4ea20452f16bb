"""The aggregator service: turns raw activity into the figures dashboards read."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from nats.aio.msg import Msg

from common.commands import CommandHandler, CommandWorker
from common.idempotency import forget_processed_before
from common.models.base import utcnow

PROCESSED_RETENTION = timedelta(days=7)


class AggregatorWorker(CommandWorker):
    name = "aggregator"

    def commands(self) -> dict[str, CommandHandler]:
        return {"retention_cleanup": self.retention_cleanup}

    async def retention_cleanup(self, payload: dict[str, Any], msg: Msg) -> None:
        await asyncio.to_thread(self._forget_old_messages)

    def _forget_old_messages(self) -> None:
        # Redeliveries come within minutes; a week of ids is a wide margin.
        with self.appdb.transaction() as session:
            forget_processed_before(session, utcnow() - PROCESSED_RETENTION)
