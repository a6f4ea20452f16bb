"""Beats to JetStream in groups: callers queue beats, the bus loop publishes them.

A caller — a Flask request thread, or the lean ASGI app on the bus's own loop — queues its
beat (a lock and an append) and waits; every few milliseconds the bus loop publishes all
queued beats as one message (`{"beats": [...]}`) and, once JetStream acks it, releases their
callers, who answer 204. So a 204 means stored: a web process killed (SIGKILL) the next moment
loses no beat it answered — found missing by the chaos run (bench/chaos.py) when the answer
came before the ack. A group that is not acked is retried with the same message id; a caller
that waits longer than ACK_TIMEOUT_S answers 503 and the script sends the beat again (stored
twice, it counts once). When the queue is full (the bus has been away a while) new beats are
refused with 503 at once. Thousands of beats a second still cost one round trip per group,
not per request: a caller waits a few milliseconds longer, holding no database or thread of
the bus loop.

The beats' own ids stay inside the message; the aggregator needs no more, as merging a beat
twice changes nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from typing import Any

from common.bus import MSG_ID_HEADER, Bus, encode
from web.bus_client import BusClient, BusUnavailable

log = logging.getLogger(__name__)

# Resolved when the beat's group is stored: a thread's future (the Flask route) or the loop's.
Waiter = concurrent.futures.Future[None] | asyncio.Future[None]

ACK_TIMEOUT_S = 5.0
FLUSH_EVERY_S = 0.002
MAX_BEATS_PER_MESSAGE = 1000
MAX_QUEUED_BEATS = 100_000
RETRY_AFTER_S = 1.0


class BeatPublisher:
    """One grouping publisher, two ways in: `publish` from request threads (the Flask route:
    the bus lives on BusClient's loop, so the flush is handed over to it) and `publish_acked`
    on the loop the bus lives on (the lean ASGI app, `BeatPublisher.on_loop`). Both return
    only once JetStream has stored the beat's group: a 204 is a stored beat, so a web process
    killed the next moment loses nothing it answered."""

    def __init__(self, bus_client: BusClient | None, subject: str, *, bus: Bus | None = None):
        self.bus_client = bus_client
        self.subject = subject
        self._lock = threading.Lock()
        self._queued: list[tuple[dict[str, Any], Waiter]] = []
        self._flush_scheduled = False
        self._bus: Bus | None = bus
        self._in_flight: set[asyncio.Future[None]] = set()
        self.published = 0
        self.retried = 0

    @classmethod
    def on_loop(cls, bus: Bus, subject: str) -> BeatPublisher:
        """A publisher for callers on `bus`'s own event loop."""
        return cls(None, subject, bus=bus)

    def publish(self, beat: dict[str, Any]) -> None:
        """Publish one beat from a thread that is not the bus loop, waiting until its group is
        stored; raises BusUnavailable when it cannot be taken or is not stored in time (the
        script sends it again: a beat stored twice counts once)."""
        assert self.bus_client is not None, "on_loop publishers take publish_acked"
        if self._bus is None:
            # Connects on first use (raising BusUnavailable if it cannot).
            self._bus = self.bus_client.bus()
        stored: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self._queue(beat, stored):
            self.bus_client.call_soon(self._flush_soon)
        try:
            stored.result(ACK_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise BusUnavailable("the bus did not store the beat in time") from None

    async def publish_acked(self, beat: dict[str, Any]) -> None:
        """`publish` on the bus's own loop."""
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._queue(beat, stored):
            self._flush_soon()
        try:
            await asyncio.wait_for(asyncio.shield(stored), ACK_TIMEOUT_S)
        except TimeoutError:
            raise BusUnavailable("the bus did not store the beat in time") from None

    def _queue(self, beat: dict[str, Any], stored: Waiter) -> bool:
        """Queue the beat; True when no flush is scheduled yet (the caller schedules one)."""
        with self._lock:
            if len(self._queued) >= MAX_QUEUED_BEATS:
                raise BusUnavailable("too many beats are waiting for the bus")
            self._queued.append((beat, stored))
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        return schedule

    def _flush_soon(self) -> None:  # on the bus loop
        # One wake-up and one message for everything that arrives in the next few ms.
        asyncio.get_running_loop().call_later(FLUSH_EVERY_S, self._flush)

    def _flush(self) -> None:  # on the bus loop
        with self._lock:
            queued, self._queued = self._queued, []
            self._flush_scheduled = False
        for offset in range(0, len(queued), MAX_BEATS_PER_MESSAGE):
            group = queued[offset : offset + MAX_BEATS_PER_MESSAGE]
            task = asyncio.ensure_future(self._publish(group, uuid.uuid4().hex))
            # Held until done: the loop keeps only weak references to tasks.
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def drain(self, timeout_s: float = ACK_TIMEOUT_S) -> bool:
        """On the bus loop, at shutdown: publish what is queued now and wait (at most
        `timeout_s`) for every group to be acked. True when all were."""
        self._flush()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout_s)
        return not self._in_flight and not self.pending()

    async def _publish(self, group: list[tuple[dict[str, Any], Waiter]], msg_id: str) -> None:
        assert self._bus is not None
        data = encode({"beats": [beat for beat, _ in group]})
        while True:
            try:
                # A retry keeps its message id: if the first try was stored after all,
                # JetStream's duplicate window drops the second.
                await self._bus.js.publish(
                    self.subject, data, timeout=ACK_TIMEOUT_S, headers={MSG_ID_HEADER: msg_id}
                )
            except Exception as exc:  # noqa: BLE001 - the bus reconnects by itself; retry
                self.retried += 1
                log.warning("heartbeat group of %d not acked (%s); retrying", len(group), exc)
                await asyncio.sleep(RETRY_AFTER_S)
                continue
            self.published += len(group)
            for _, stored in group:
                if not stored.done():
                    stored.set_result(None)
            return

    def pending(self) -> int:
        with self._lock:
            return len(self._queued)
