"""Services that take commands: `mr.cmd.<service>.<command>` dispatched to small handlers.

Every command service also answers `probe`, an end-to-end canary: it records the message id
as processed (once, however often it is delivered) after an optional hold, so operators and
tests can prove that a command went through the bus, a worker and the app DB.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg

from common.appdb import AppDB
from common.bus import ConsumerSpec, command_subject, message_id
from common.idempotency import already_processed, mark_processed
from common.service import Consumption, RejectMessage, Worker

CommandHandler = Callable[[dict[str, Any], Msg], Awaitable[None]]


class CommandWorker(Worker):
    max_deliver = 8

    def on_start_db(self) -> None:
        """Open the app DB; services that need more (a Moodle source) extend this."""
        self.appdb = AppDB(self.settings.database_url)

    async def on_start(self) -> None:
        self.on_start_db()

    async def on_stop(self) -> None:
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
        await handler(payload, msg)

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
