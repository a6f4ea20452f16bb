"""The grouping publisher's two ways in — request threads (Flask) and its own loop (the lean
app) — share one flush/publish/retry core: beats go out in groups, survive a bus restart, and
are refused once too many wait."""

from __future__ import annotations

import asyncio
import threading

import pytest

from common.analytics.heartbeats import SUBJECT
from common.bus import Bus
from tests.web.tracking.conftest import stored_beats, stream_messages
from web.bus_client import BusClient, BusUnavailable
from web.tracking import publisher as publisher_module
from web.tracking.publisher import MAX_BEATS_PER_MESSAGE, BeatPublisher


def beats(count: int, prefix: str) -> list[dict]:
    return [{"id": f"{prefix}-{i:06d}", "u": 7, "c": 2, "m": 0, "t": 1_795_000_000 + i}
            for i in range(count)]  # fmt: skip


def test_on_its_loop_beats_go_out_in_groups_and_drain_waits_for_the_acks(nats_server):
    async def go() -> BeatPublisher:
        bus = await Bus.connect(nats_server.url, "test")
        await bus.ensure_streams()
        publisher = BeatPublisher.on_loop(bus, SUBJECT)
        for beat in beats(2 * MAX_BEATS_PER_MESSAGE + 500, "loop"):
            publisher.publish_nowait(beat)
        assert await publisher.drain()
        await bus.close()
        return publisher

    publisher = asyncio.run(go())
    assert publisher.published == 2500 and publisher.pending() == 0
    messages = stream_messages(nats_server.url)
    assert [len(payload["beats"]) for _, payload in messages] == [1000, 1000, 500]
    assert len({msg_id for msg_id, _ in messages}) == 3  # one message id per group


def test_on_its_loop_a_bus_restart_delays_beats_but_loses_none(nats_server):
    async def go() -> tuple[bool, bool, BeatPublisher]:
        bus = await Bus.connect(nats_server.url, "test")
        await bus.ensure_streams()
        publisher = BeatPublisher.on_loop(bus, SUBJECT)
        nats_server.stop()
        for beat in beats(300, "outage"):
            publisher.publish_nowait(beat)
        acked_while_down = await publisher.drain(timeout_s=1.0)
        await asyncio.get_running_loop().run_in_executor(None, nats_server.start)
        acked_after = await publisher.drain(timeout_s=30.0)
        await bus.close()
        return acked_while_down, acked_after, publisher

    acked_while_down, acked_after, publisher = asyncio.run(go())
    assert not acked_while_down and acked_after
    assert publisher.retried >= 1
    stored = stored_beats(nats_server.url, expect=300)
    assert sorted(b["id"] for b in stored) == [f"outage-{i:06d}" for i in range(300)]


def test_from_threads_beats_are_handed_to_the_bus_loop(nats_server):
    client = BusClient(nats_server.url)
    publisher = BeatPublisher(client, SUBJECT)
    workers = [
        threading.Thread(target=lambda n=n: [publisher.publish(b) for b in beats(200, f"t{n}")])
        for n in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    try:
        assert len(stored_beats(nats_server.url, expect=800)) == 800
    finally:
        client.close()


def test_too_many_waiting_beats_are_refused(nats_server, monkeypatch):
    monkeypatch.setattr(publisher_module, "MAX_QUEUED_BEATS", 10)

    async def go() -> None:
        bus = await Bus.connect(nats_server.url, "test")
        await bus.ensure_streams()
        publisher = BeatPublisher.on_loop(bus, SUBJECT)
        for beat in beats(10, "full"):
            publisher.publish_nowait(beat)  # queued; the flush comes on a later loop turn
        with pytest.raises(BusUnavailable):
            publisher.publish_nowait(beats(1, "one-too-many")[0])
        assert await publisher.drain()
        await bus.close()

    asyncio.run(go())
    assert len(stored_beats(nats_server.url, expect=10)) == 10
