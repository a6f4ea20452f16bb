"""The runtime every service shares: consume, answer health, shut down gracefully.

A service is a `Worker` subclass that lists its `Consumption`s. For each one the runtime runs a
pull loop on a durable consumer and hands each message (or batch) to the handler; a message is
acked only after its handler returned. On SIGTERM the loops stop fetching, in-flight handlers
get `shutdown_grace_s` to finish, and whatever is still unfinished is NAKed back to the stream,
so another replica takes it at once instead of after ack_wait.

Each replica also writes a heartbeat to a KV bucket (common/service_beats.py, for `manireports
status`), counts what it processed and what failed (common/metrics.py), and with METRICS_PORT
set answers GET /metrics on that port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import ServiceUnavailableError

from common.bus import HEALTH_ALL, Bus, ConsumerSpec, decode, encode, health_subject
from common.metrics import FAILURES, PROCESSED, MetricsListener, queue_registry
from common.metrics import on_loop as metrics_on_loop
from common.service_beats import final_beat, report_alive
from common.settings import Settings

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The message could not be applied now; redeliver it after `delay_s`."""

    def __init__(self, reason: str, delay_s: float = 5.0):
        super().__init__(reason)
        self.delay_s = delay_s


class RejectMessage(Exception):
    """The message can never be applied (malformed, unknown kind): terminate, do not retry."""


MessageHandler = Callable[[dict[str, Any], Msg], Awaitable[None]]
BatchHandler = Callable[[list[tuple[dict[str, Any], Msg]]], Awaitable[None]]


@dataclass
class Consumption:
    consumer: ConsumerSpec
    handle: MessageHandler | None = None
    handle_batch: BatchHandler | None = None
    batch_size: int = 1
    fetch_wait_s: float = 1.0
    # Batch handlers with a fixed cost per batch (a transaction) may wait this long for a
    # fuller batch once the first messages are in.
    linger_s: float = 0.0


class Worker:
    name = "worker"
    shutdown_grace_s = 20.0
    bus_wait_s = 60.0  # at start, for JetStream to have a leader

    def __init__(self, settings: Settings, bus: Bus):
        self.settings = settings
        self.bus = bus
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = time.time()
        self.processed = 0
        self.failed = 0
        self._stopping = asyncio.Event()
        # Keyed by id(): nats-py's Msg is an unhashable dataclass.
        self._inflight: dict[int, Msg] = {}

    # -- what a service defines -------------------------------------------------
    def consumptions(self) -> list[Consumption]:
        return []

    async def on_start(self) -> None:
        """Open what the handlers need (DB engines, clients)."""

    async def on_stop(self) -> None:
        """Close what on_start opened."""

    async def background_tasks(self) -> list[Coroutine[Any, Any, None]]:
        """Long-running loops besides consumption (the scheduler's leader loop)."""
        return []

    def health_details(self) -> dict[str, Any]:
        return {}

    def healthy(self) -> bool:
        return self.bus.nc.is_connected

    # -- the runtime ------------------------------------------------------------
    def request_stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        await self._ensure_streams()
        await self.on_start()
        await self._serve_health()
        metrics = self._start_metrics()
        loops = [asyncio.create_task(self._consume(c)) for c in self.consumptions()]
        extra = [asyncio.create_task(coro) for coro in await self.background_tasks()]
        extra.append(asyncio.create_task(report_alive(self.bus, self.health)))
        log.info("%s %s started", self.name, self.instance)
        await self._stopping.wait()
        log.info("%s stopping: finishing %d in-flight message(s)", self.name, len(self._inflight))
        await self._wait_inflight()
        # Taken before cancelling: a cancelled loop's `finally` forgets its messages.
        unfinished = list(self._inflight.values())
        for task in loops + extra:
            task.cancel()
        await asyncio.gather(*loops, *extra, return_exceptions=True)
        await self._nak_all(unfinished)
        await final_beat(self.bus, self.health())
        await self.on_stop()
        if metrics is not None:
            metrics.stop()
        await self.bus.close()
        log.info("%s stopped", self.name)

    async def _serve_health(self) -> None:
        async def answer(msg: Msg) -> None:
            if msg.reply:
                await msg.respond(encode(self.health()))

        await self.bus.nc.subscribe(health_subject(self.name), cb=answer)
        await self.bus.nc.subscribe(HEALTH_ALL, cb=answer)

    async def _ensure_streams(self) -> None:
        """The streams, waiting out a NATS cluster without a JetStream leader yet (servers
        starting together, or an election): the bus answers timeouts or 503 meanwhile."""
        deadline = time.monotonic() + self.bus_wait_s
        while True:
            try:
                await self.bus.ensure_streams()
                return
            except (NatsTimeout, ServiceUnavailableError) as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("%s: JetStream not ready (%s); trying again", self.name, exc)
                await asyncio.sleep(1.0)

    def _start_metrics(self) -> MetricsListener | None:
        """GET /metrics on METRICS_PORT (0: off); a port taken is logged, not fatal."""
        settings = self.settings
        if not settings.metrics_port:
            return None
        source = metrics_on_loop(asyncio.get_running_loop(), lambda: self.bus)
        try:
            listener = MetricsListener(settings.metrics_host, settings.metrics_port,
                                       queue_registry(source), settings.metrics_token)  # fmt: skip
        except OSError as exc:
            log.error("%s: no /metrics on %s:%d: %s", self.name, settings.metrics_host,
                      settings.metrics_port, exc)  # fmt: skip
            return None
        log.info("%s: /metrics on %s:%d", self.name, settings.metrics_host, listener.port)
        return listener.start()

    def count_processed(self, count: int = 1) -> None:
        self.processed += count
        PROCESSED.labels(self.name).inc(count)

    def count_failed(self, count: int = 1) -> None:
        self.failed += count
        FAILURES.labels(self.name, "message").inc(count)

    def health(self) -> dict[str, Any]:
        return {
            "service": self.name,
            "instance": self.instance,
            "healthy": self.healthy() and not self.stopping,
            "uptime_s": round(time.time() - self.started_at, 1),
            "processed": self.processed,
            "failed": self.failed,
            **self.health_details(),
        }

    async def _consume(self, consumption: Consumption) -> None:
        sub = None
        while not self.stopping:
            try:
                if sub is None:
                    sub = await self.bus.pull(consumption.consumer)
                msgs = await sub.fetch(consumption.batch_size, timeout=consumption.fetch_wait_s)
                if consumption.linger_s:
                    msgs += await self._linger(sub, consumption, len(msgs))
            except (TimeoutError, NatsTimeout):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the bus reconnects; fetch again after
                log.warning(
                    "%s: fetch on %s failed: %s", self.name, consumption.consumer.durable, exc
                )
                sub = None
                await asyncio.sleep(0.5)
                continue
            if self.stopping:
                await self._nak_all(msgs)
                return
            self._inflight.update((id(m), m) for m in msgs)
            try:
                if consumption.handle_batch is not None:
                    await self._deliver_batch(consumption.handle_batch, msgs)
                else:
                    for msg in msgs:
                        await self._deliver(consumption.handle, msg)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - see below
                # An ack (or NAK) lost with the connection: a NATS server died mid-message.
                # The stream redelivers what was not acked after ack_wait; this loop goes on
                # (ending it would leave the replica answering health but consuming nothing).
                log.warning("%s: delivery on %s interrupted: %s", self.name,
                            consumption.consumer.durable, exc)  # fmt: skip
                sub = None
                await asyncio.sleep(0.5)
            finally:
                for msg in msgs:
                    self._inflight.pop(id(msg), None)

    async def _linger(self, sub: Any, consumption: Consumption, have: int) -> list[Msg]:
        more: list[Msg] = []
        deadline = time.monotonic() + consumption.linger_s
        while have + len(more) < consumption.batch_size and not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0.005:
                break
            try:
                more += await sub.fetch(consumption.batch_size - have - len(more), timeout=left)
            except (TimeoutError, NatsTimeout):
                break
        return more

    async def _deliver(self, handle: MessageHandler, msg: Msg) -> None:
        try:
            payload = decode(msg.data)
        except ValueError as exc:
            # Only a payload that cannot be read is dropped for good; a handler's ValueError
            # is a bug or a passing state, and is retried like any other error.
            self.count_failed()
            log.error("%s: rejected malformed message on %s: %s", self.name, msg.subject, exc)
            await msg.term()
            return
        try:
            await handle(payload, msg)
        except RetryLater as exc:
            log.info("%s: retry %s in %.1fs: %s", self.name, msg.subject, exc.delay_s, exc)
            await msg.nak(delay=exc.delay_s)
            return
        except RejectMessage as exc:
            self.count_failed()
            log.error("%s: rejected message on %s: %s", self.name, msg.subject, exc)
            await msg.term()
            return
        except Exception:
            self.count_failed()
            log.exception("%s: handler failed on %s; will be redelivered", self.name, msg.subject)
            await msg.nak(delay=_redelivery_delay(msg))
            return
        await msg.ack_sync()
        self.count_processed()

    async def _deliver_batch(self, handle: BatchHandler, msgs: list[Msg]) -> None:
        batch: list[tuple[dict[str, Any], Msg]] = []
        for msg in msgs:
            try:
                batch.append((decode(msg.data), msg))
            except ValueError as exc:
                self.count_failed()
                log.error("%s: rejected malformed message: %s", self.name, exc)
                await msg.term()
        if not batch:
            return
        try:
            await handle(batch)
        except Exception:
            self.count_failed(len(batch))
            log.exception("%s: batch of %d failed; will be redelivered", self.name, len(batch))
            await self._nak_all([m for _, m in batch])
            return
        for _, msg in batch:
            await msg.ack()
        await self.bus.nc.flush()
        self.count_processed(len(batch))

    async def _wait_inflight(self) -> None:
        deadline = time.monotonic() + self.shutdown_grace_s
        while self._inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _nak_all(self, msgs: list[Msg]) -> None:
        for msg in msgs:
            try:
                await msg.nak()
            except Exception as exc:  # noqa: BLE001 - connection may already be gone
                log.debug("nak failed: %s", exc)


def _redelivery_delay(msg: Msg) -> float:
    attempt = msg.metadata.num_delivered if msg.metadata else 1
    return float(min(2 ** max(attempt - 1, 0), 60))
