"""At most REPORT_MAX_CONCURRENT report executions at once, across every web replica.

The semaphore lives in two NATS JetStream KV buckets, reached through the web tier's one bus
connection: `<prefix>_slots` holds `slot.0` … `slot.N-1` — taking a slot is KV `create`
(atomic create-if-absent), giving it back a delete conditional on the revision taken, so no
N+1th holder can exist. A holder renews its slot every SLOT_RENEW_S; the bucket's TTL
(SLOT_TTL_S) frees the slot of a replica that crashed. `<prefix>_queue` is the fair queue:
a waiter's ticket is the revision of a `put` of the `ticket` key (the stream's sequence,
atomic and increasing across replicas), its key `wait.<ticket>.<id>` is renewed while it
waits, and its position is the number of live waiters with a lower ticket. A waiter takes a
free slot only when fewer than the free slots wait ahead of it.

A request waits a short while (DEFAULT_WAIT_S), then gets `RunLimitBusy` with its position,
a Retry-After and its ticket; a retry carrying the ticket keeps its place (the key lives
WAIT_TTL_S after its last renewal). Without NATS — or while the bus is unreachable — the
limit holds within the process only (`LocalRunLimiter`), and the limiter says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from common.bus import Bus

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 2.0
SLOT_TTL_S = 30.0
SLOT_RENEW_S = 10.0
WAIT_TTL_S = 5.0
WAIT_RENEW_S = 2.0
SCAN_INTERVAL_S = 0.05
BUS_RETRY_S = 15
BUCKET_PREFIX = "manireports_run"
_TICKET = re.compile(r"([0-9]{1,19})\.([0-9a-f]{32})")


class RunLimitBusy(Exception):
    """No slot came free in time: `position` runs wait ahead of this one."""

    def __init__(self, position: int, retry_after_s: int, ticket: str | None = None):
        super().__init__(f"every report slot is busy; {position} ahead of you")
        self.position = position
        self.retry_after_s = retry_after_s
        self.ticket = ticket


def retry_after(position: int, limit: int) -> int:
    """Seconds before asking again: 1, or 2 far back in a long queue. Short on purpose: a
    slot that frees while its next-in-line sleeps stays idle (measured in bench/run_limit.py)."""
    return 1 if position < 8 * max(limit, 1) else 2


@dataclass
class Hold:
    """A slot taken; `release()` gives it back (once)."""

    slot: str
    waited_s: float
    _release: Callable[[], None] = field(repr=False, default=lambda: None)
    _released: bool = field(default=False, repr=False)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._release()


class RunLimiter(Protocol):
    limit: int

    def describe(self) -> str: ...

    def acquire(self, *, wait_s: float = DEFAULT_WAIT_S, ticket: str | None = None) -> Hold: ...


@contextmanager
def slot(
    limiter: RunLimiter, *, wait_s: float = DEFAULT_WAIT_S, ticket: str | None = None
) -> Iterator[Hold]:
    """Hold one of the limiter's slots for the block (RunLimitBusy when none came free)."""
    hold = limiter.acquire(wait_s=wait_s, ticket=ticket)
    try:
        yield hold
    finally:
        hold.release()


class UnlimitedRunLimiter:
    """REPORT_MAX_CONCURRENT=0: no limit."""

    limit = 0

    def describe(self) -> str:
        return "no limit (REPORT_MAX_CONCURRENT=0)"

    def acquire(self, *, wait_s: float = DEFAULT_WAIT_S, ticket: str | None = None) -> Hold:
        return Hold("unlimited", 0.0)


class LocalRunLimiter:
    """The limit within this process: a FIFO semaphore for threads."""

    def __init__(self, limit: int, reason: str = "NATS_URL is not set"):
        self.limit = limit
        self.reason = reason
        self._cond = threading.Condition()
        self._held = 0
        self._queue: list[int] = []
        self._next_ticket = 0

    def describe(self) -> str:
        return f"{self.limit} at once in this process only ({self.reason})"

    @property
    def running(self) -> int:
        return self._held

    def acquire(self, *, wait_s: float = DEFAULT_WAIT_S, ticket: str | None = None) -> Hold:
        started = time.monotonic()
        deadline = started + wait_s
        with self._cond:
            self._next_ticket += 1
            mine = self._next_ticket
            self._queue.append(mine)
            while True:
                position = self._queue.index(mine)
                if position < self.limit - self._held:
                    self._queue.remove(mine)
                    self._held += 1
                    self._cond.notify_all()
                    return Hold(f"local.{mine}", time.monotonic() - started, self._release)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._queue.remove(mine)
                    self._cond.notify_all()
                    raise RunLimitBusy(position, retry_after(position, self.limit))
                self._cond.wait(remaining)

    def _release(self) -> None:
        with self._cond:
            self._held -= 1
            self._cond.notify_all()


class BusRunner(Protocol):
    """What the web tier's BusClient offers: run `factory(bus)` on its loop, wait for it."""

    def run(self, coro_factory: Any, timeout_s: float = 10) -> Any: ...


@dataclass(eq=False)
class _Waiter:
    key: str
    ticket: int
    future: asyncio.Future[tuple[str, int]]
    renewed: float
    position: int = 0


class KvRunLimiter:
    """The limit across replicas, in NATS KV (see the module's docstring)."""

    def __init__(
        self,
        runner: BusRunner,
        limit: int,
        *,
        prefix: str = BUCKET_PREFIX,
        slot_ttl_s: float = SLOT_TTL_S,
        slot_renew_s: float = SLOT_RENEW_S,
        wait_ttl_s: float = WAIT_TTL_S,
    ):
        self.limit = limit
        self.runner = runner
        self.slots_bucket = f"{prefix}_slots"
        self.queue_bucket = f"{prefix}_queue"
        self.slot_ttl_s = slot_ttl_s
        self.slot_renew_s = slot_renew_s
        self.wait_ttl_s = wait_ttl_s
        self.fallback = LocalRunLimiter(limit, "the bus is unreachable")
        self._holder = f"{socket.gethostname()}:{os.getpid()}"
        # Loop-side state: touched only by coroutines on the bus loop.
        self._kv: tuple[KeyValue, KeyValue] | None = None
        self._waiters: dict[str, _Waiter] = {}
        self._scanner: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._renewals: dict[str, asyncio.Task[None]] = {}
        self._revisions: dict[str, int] = {}
        self._bus: Bus | None = None
        self._bus_down_until = 0.0

    def describe(self) -> str:
        return f"{self.limit} at once across every web replica (NATS KV {self.slots_bucket})"

    # ---- the calling thread's side --------------------------------------------------------

    def acquire(self, *, wait_s: float = DEFAULT_WAIT_S, ticket: str | None = None) -> Hold:
        started = time.monotonic()
        if started < self._bus_down_until:  # not every request waits for a dead bus
            return self.fallback.acquire(wait_s=wait_s)
        try:
            name, revision = self._run(lambda bus: self._acquire(bus, wait_s, ticket), wait_s + 10)
        except RunLimitBusy:
            raise
        except Exception as exc:  # noqa: BLE001 - the bus is down: the local limit still holds
            self._bus_down_until = time.monotonic() + BUS_RETRY_S
            log.warning("run limit: %s; limiting within this process only for %d s", exc,
                        BUS_RETRY_S)  # fmt: skip
            return self.fallback.acquire(wait_s=max(0.0, wait_s - (time.monotonic() - started)))

        def give_back() -> None:
            try:
                self._run(lambda bus: self._release(name, revision), 10)
            except Exception as exc:  # noqa: BLE001 - the TTL frees it
                log.warning("run limit: could not give back %s (%s); it expires", name, exc)

        def release() -> None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                give_back()
            else:  # on an event loop (a finalizer run there): never block it
                threading.Thread(target=give_back, daemon=True).start()

        return Hold(name, time.monotonic() - started, release)

    def _run(self, factory: Callable[[Bus], Coroutine[Any, Any, Any]], timeout_s: float) -> Any:
        return self.runner.run(factory, timeout_s)

    # ---- the bus loop's side -------------------------------------------------------------

    @property
    def freed_subject(self) -> str:
        return f"mr.runlimit.{self.slots_bucket}.freed"

    async def _buckets(self, bus: Bus) -> tuple[KeyValue, KeyValue]:
        if self._kv is None:
            slots = await bus.key_value(self.slots_bucket, ttl_s=self.slot_ttl_s)
            queue = await bus.key_value(self.queue_bucket, ttl_s=self.wait_ttl_s)
            self._wake = asyncio.Event()
            wake = self._wake

            async def freed(_msg: Any) -> None:
                wake.set()

            # A slot given back on any replica wakes every replica's waiters at once (the
            # scan every SCAN_INTERVAL_S still finds slots freed by expiry).
            await bus.nc.subscribe(self.freed_subject, cb=freed)
            self._kv = (slots, queue)
        return self._kv

    async def _acquire(self, bus: Bus, wait_s: float, ticket: str | None) -> tuple[str, int]:
        slots, queue = await self._buckets(bus)
        self._bus = bus
        waiter = await self._enqueue(bus, queue, ticket)
        self._waiters[waiter.key] = waiter
        self._wake_scanner(bus)
        # Each waiter gives up somewhere in the second half of `wait_s`: waiters that came
        # together (a burst) then park and come back at different times, so some always wait
        # for the next free slot — all parked at once, slots would idle until they return.
        patience = wait_s * random.uniform(0.5, 1.0)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), patience)
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled():
                return waiter.future.result()
            waiter.future.cancel()
            self._waiters.pop(waiter.key, None)
            # Parked, the place is kept for a retry with the ticket (until the key expires)
            # and counted in positions, but lets the waiters behind it take a free slot.
            parked = "park" + waiter.key[len("wait") :]
            await queue.put(parked, b"")
            await self._purge(bus, waiter.key)
            raise RunLimitBusy(
                waiter.position,
                retry_after(waiter.position, self.limit),
                f"{waiter.ticket}.{waiter.key.rsplit('.', 1)[1]}",
            ) from None

    async def _enqueue(self, bus: Bus, queue: KeyValue, ticket: str | None) -> _Waiter:
        loop = asyncio.get_running_loop()
        match = _TICKET.fullmatch(ticket or "")
        if match:
            number, ident = int(match[1]), match[2]
            key = f"wait.{number:019d}.{ident}"
            if key not in self._waiters:
                try:
                    await queue.get(f"park.{number:019d}.{ident}")  # still in the queue
                except KeyNotFoundError:
                    pass
                else:
                    await queue.put(key, b"")
                    await self._purge(bus, f"park.{number:019d}.{ident}")
                    return _Waiter(key, number, loop.create_future(), loop.time())
        number = await queue.put("ticket", b"")
        key = f"wait.{number:019d}.{uuid.uuid4().hex}"
        await queue.put(key, b"")
        return _Waiter(key, number, loop.create_future(), loop.time())

    async def _purge(self, bus: Bus, key: str) -> None:
        """Remove a queue key outright (no delete marker left to list)."""
        subject = f"$KV.{self.queue_bucket}.{key}"
        await bus.js.purge_stream(f"KV_{self.queue_bucket}", subject=subject)

    def _wake_scanner(self, bus: Bus) -> None:
        assert self._wake is not None
        self._wake.set()
        if self._scanner is None or self._scanner.done():
            self._scanner = asyncio.get_running_loop().create_task(self._scan_loop(bus))

    async def _scan_loop(self, bus: Bus) -> None:
        """While anyone here waits: read the slots and the queue, let in whoever's turn it is."""
        assert self._kv is not None and self._wake is not None
        slots, queue = self._kv
        while self._waiters:
            self._wake.clear()
            try:
                await self._scan_once(bus, slots, queue)
            except Exception:  # noqa: BLE001 - the next round tries again; waiters time out
                log.exception("run limit: scanning the slots failed")
            if self._waiters:
                try:
                    await asyncio.wait_for(self._wake.wait(), SCAN_INTERVAL_S)
                except TimeoutError:
                    pass

    async def _scan_once(self, bus: Bus, slots: KeyValue, queue: KeyValue) -> None:
        taken = await asyncio.gather(*(_exists(slots, f"slot.{i}") for i in range(self.limit)))
        free = [i for i in range(self.limit) if not taken[i]]
        info = await bus.js.stream_info(
            f"KV_{self.queue_bucket}", subjects_filter=f"$KV.{self.queue_bucket}.*.*.*"
        )
        prefix = f"$KV.{self.queue_bucket}."
        keys = {s[len(prefix) :] for s in (info.state.subjects or {})}
        keys.update(self._waiters)  # a key just put may not be listed yet
        # `wait|park.<ticket, zero-padded>.<id>`: ticket order. Everyone queued counts for
        # the position told; only those waiting now for the turn to take a slot.
        queued = sorted(keys, key=lambda k: k[5:])
        waiting = [k for k in queued if k.startswith("wait.")]
        now = asyncio.get_running_loop().time()
        work: list[Coroutine[Any, Any, object]] = []
        for waiter in sorted(self._waiters.values(), key=lambda w: w.key):
            waiter.position = queued.index(waiter.key)
            if waiter.future.done():
                continue
            turn = waiting.index(waiter.key)
            if turn < len(free):
                work.append(self._grant(bus, slots, waiter, free[turn]))
            elif now - waiter.renewed >= WAIT_RENEW_S:
                waiter.renewed = now
                work.append(queue.put(waiter.key, b""))
        await asyncio.gather(*work)

    async def _grant(self, bus: Bus, slots: KeyValue, waiter: _Waiter, index: int) -> None:
        got = await self._take(slots, index)
        if got is None:
            return  # another replica was quicker: the next round sees it
        if waiter.future.done():  # gave up meanwhile
            await self._release(f"slot.{index}", got)
            return
        waiter.future.set_result((f"slot.{index}", got))
        self._waiters.pop(waiter.key, None)
        await self._purge(bus, waiter.key)

    async def _take(self, slots: KeyValue, index: int) -> int | None:
        key = f"slot.{index}"
        value = json.dumps({"holder": self._holder, "since": time.time()}).encode()
        try:
            revision = await slots.create(key, value)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            return None
        self._renewals[key] = asyncio.get_running_loop().create_task(
            self._renew(slots, key, value, revision)
        )
        return revision

    async def _renew(self, slots: KeyValue, key: str, value: bytes, revision: int) -> None:
        """Keep a long run's slot from expiring; only a crashed holder loses its slot."""
        while True:
            await asyncio.sleep(self.slot_renew_s)
            try:
                revision = await slots.update(key, value, last=revision)
            except Exception as exc:  # noqa: BLE001
                log.error("run limit: could not renew %s (%s); it may expire while running",
                          key, exc)  # fmt: skip
                return
            self._revisions[key] = revision

    async def _release(self, key: str, revision: int) -> None:
        task = self._renewals.pop(key, None)
        if task is not None:
            task.cancel()
        revision = self._revisions.pop(key, revision)
        assert self._kv is not None
        try:
            # Conditional: a slot that expired and went to someone else is theirs.
            await self._kv[0].delete(key, last=revision)
        except KeyWrongLastSequenceError:
            log.warning("run limit: %s had expired and was taken again", key)
        if self._wake is not None:
            self._wake.set()
        bus = self._bus
        if bus is not None:
            await bus.nc.publish(self.freed_subject, b"")


async def _exists(kv: KeyValue, key: str) -> bool:
    try:
        await kv.get(key)
    except KeyNotFoundError:  # never written, deleted or expired
        return False
    return True


def build_run_limiter(
    limit: int, runner: BusRunner | None, *, prefix: str = BUCKET_PREFIX
) -> RunLimiter:
    """The limiter for REPORT_MAX_CONCURRENT=`limit`: across replicas through `runner` (the
    web tier's bus, buckets named from `prefix`), in this process only without one, none
    at 0."""
    if limit == 0:
        return UnlimitedRunLimiter()
    if runner is None:
        limiter = LocalRunLimiter(limit)
        log.warning("REPORT_MAX_CONCURRENT: %s", limiter.describe())
        return limiter
    return KvRunLimiter(runner, limit, prefix=prefix)
