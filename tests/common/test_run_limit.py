"""The report concurrency limit on a real nats-server: two "replicas" (two bus connections)
share N slots; the N+1th waits or is told its place; a crashed holder's slot expires; without
the bus the limit holds within the process."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from common.run_limit import (
    KvRunLimiter,
    LocalRunLimiter,
    RunLimitBusy,
    UnlimitedRunLimiter,
    build_run_limiter,
    slot,
)
from common.settings import SettingsError
from tests.support import make_settings
from web.bus_client import BusClient


@pytest.fixture
def replicas(nats_server) -> Iterator[tuple[BusClient, BusClient]]:  # type: ignore[no-untyped-def]
    a, b = BusClient(nats_server.url, "replica-a"), BusClient(nats_server.url, "replica-b")
    yield a, b
    a.close()
    b.close()


def limiters(replicas, limit: int, **options: float) -> tuple[KvRunLimiter, KvRunLimiter]:  # type: ignore[no-untyped-def]
    prefix = f"test_{uuid.uuid4().hex[:8]}"  # the server is shared: buckets of our own
    a, b = replicas
    return (KvRunLimiter(a, limit, prefix=prefix, **options),
            KvRunLimiter(b, limit, prefix=prefix, **options))  # fmt: skip


def test_n_holders_across_two_replicas_keep_the_next_one_out(replicas):
    a, b = limiters(replicas, 3)
    held = [a.acquire(wait_s=1), b.acquire(wait_s=1), a.acquire(wait_s=1)]
    assert len({h.slot for h in held}) == 3
    started = time.monotonic()
    with pytest.raises(RunLimitBusy) as busy:
        b.acquire(wait_s=0.5)
    # It waited before giving up: somewhere in the second half of its patience.
    assert 0.25 <= time.monotonic() - started < 1.0
    assert busy.value.position == 0
    assert busy.value.retry_after_s >= 1
    assert busy.value.ticket
    held[0].release()
    after = b.acquire(wait_s=1)
    assert after.slot == held[0].slot
    for hold in (after, held[1], held[2]):
        hold.release()


def test_a_release_on_one_replica_lets_a_waiter_on_the_other_in(replicas):
    a, b = limiters(replicas, 1)
    first = a.acquire(wait_s=1)
    threading.Timer(0.4, first.release).start()
    started = time.monotonic()
    second = b.acquire(wait_s=3)
    assert 0.3 < time.monotonic() - started < 2.0
    assert second.waited_s >= 0.3
    second.release()


def test_waiters_are_told_their_place_and_a_ticket_keeps_it(replicas):
    a, b = limiters(replicas, 1)
    holder = a.acquire(wait_s=1)
    with pytest.raises(RunLimitBusy) as first:
        a.acquire(wait_s=0.3)
    with pytest.raises(RunLimitBusy) as second:
        b.acquire(wait_s=0.3)
    assert (first.value.position, second.value.position) == (0, 1)
    # The first one comes back with its ticket (on the other replica): still at the front.
    with pytest.raises(RunLimitBusy) as again:
        b.acquire(wait_s=0.3, ticket=first.value.ticket)
    assert again.value.position == 0
    assert again.value.ticket == first.value.ticket
    # A forged ticket is not a place in the queue: it gets a new one at the back.
    with pytest.raises(RunLimitBusy) as forged:
        a.acquire(wait_s=0.3, ticket="1." + "0" * 32)
    assert forged.value.position == 2
    assert forged.value.ticket != "1." + "0" * 32
    holder.release()
    # With the slot free the ticket at the front gets it; the second waiter still waits.
    front = a.acquire(wait_s=1, ticket=first.value.ticket)
    with pytest.raises(RunLimitBusy):
        b.acquire(wait_s=0.2)
    front.release()


def test_at_most_n_run_at_once_under_contention(replicas):
    a, b = limiters(replicas, 2)
    running = peak = 0
    lock = threading.Lock()
    done: list[str] = []

    def one(limiter: KvRunLimiter) -> None:
        nonlocal running, peak
        with slot(limiter, wait_s=10):
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.15)
            with lock:
                running -= 1
        done.append("ok")

    threads = [threading.Thread(target=one, args=((a, b)[i % 2],)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert done == ["ok"] * 10
    assert peak == 2


def test_a_crashed_holders_slot_frees_itself(replicas, nats_server):
    a, b = limiters(replicas, 1, slot_ttl_s=1.5, slot_renew_s=60)
    crashed_bus = BusClient(nats_server.url, "crashing")
    crashed = KvRunLimiter(crashed_bus, 1, prefix=a.slots_bucket.removesuffix("_slots"),
                           slot_ttl_s=1.5, slot_renew_s=60)  # fmt: skip
    crashed.acquire(wait_s=1)
    crashed_bus.close()  # gone without giving the slot back
    with pytest.raises(RunLimitBusy):
        b.acquire(wait_s=0.3)
    started = time.monotonic()
    hold = b.acquire(wait_s=6)
    assert time.monotonic() - started < 6
    hold.release()


def test_a_long_run_keeps_its_slot_by_renewing_it(replicas):
    a, b = limiters(replicas, 1, slot_ttl_s=1.5, slot_renew_s=0.4)
    hold = a.acquire(wait_s=1)
    with pytest.raises(RunLimitBusy):
        b.acquire(wait_s=3)  # twice the TTL: still held
    hold.release()
    b.acquire(wait_s=1).release()


def test_without_the_bus_the_limit_holds_in_the_process():
    limiter = build_run_limiter(1, None)
    assert isinstance(limiter, LocalRunLimiter)
    assert "this process only" in limiter.describe()
    hold = limiter.acquire(wait_s=0.1)
    with pytest.raises(RunLimitBusy) as busy:
        limiter.acquire(wait_s=0.2)
    assert busy.value.position == 0
    hold.release()
    limiter.acquire(wait_s=0.1).release()


def test_an_unreachable_bus_falls_back_to_the_process_limit():
    unreachable = BusClient("nats://127.0.0.1:1", "nowhere")
    try:
        limiter = KvRunLimiter(unreachable, 1, prefix=f"test_{uuid.uuid4().hex[:8]}")
        hold = limiter.acquire(wait_s=0.2)
        assert hold.slot.startswith("local.")
        with pytest.raises(RunLimitBusy):
            limiter.acquire(wait_s=0.2)
        hold.release()
        assert limiter.fallback.running == 0
        # Until the bus is tried again, requests go straight to the local limit.
        started = time.monotonic()
        limiter.acquire(wait_s=0.2).release()
        assert time.monotonic() - started < 0.1
    finally:
        unreachable.close()


@pytest.mark.parametrize(("value", "expected"), [("", 4), ("0", 0), ("12", 12)])
def test_the_setting_defaults_to_four(tmp_path, value, expected):
    assert make_settings(tmp_path, REPORT_MAX_CONCURRENT=value).report_max_concurrent == expected


@pytest.mark.parametrize("value", ["-1", "many", "257"])
def test_a_bad_setting_names_the_variable(tmp_path, value):
    with pytest.raises(SettingsError, match="REPORT_MAX_CONCURRENT"):
        make_settings(tmp_path, REPORT_MAX_CONCURRENT=value)


def test_the_local_queue_is_first_come_first_served():
    limiter = LocalRunLimiter(1)
    hold = limiter.acquire()
    order: list[str] = []

    def wait(name: str) -> None:
        with slot(limiter, wait_s=5):
            order.append(name)

    first = threading.Thread(target=wait, args=("first",))
    first.start()
    time.sleep(0.1)
    second = threading.Thread(target=wait, args=("second",))
    second.start()
    time.sleep(0.1)
    hold.release()
    first.join(5)
    second.join(5)
    assert order == ["first", "second"]


def test_zero_means_no_limit():
    limiter = build_run_limiter(0, None)
    assert isinstance(limiter, UnlimitedRunLimiter)
    holds = [limiter.acquire(wait_s=0) for _ in range(50)]
    assert len(holds) == 50
