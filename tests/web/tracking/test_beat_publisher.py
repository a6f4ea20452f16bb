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
        sent = beats(2 * MAX_BEATS_PER_MESSAGE + 500, "loop")
        await asyncio.gather(*(publisher.publish_acked(beat) for beat in sent))
        assert publisher.published == 2500  # every caller returned after its group was stored
        assert await publisher.drain()
        await bus.close()
        return publisher

    publisher = asyncio.run(go())
    assert publisher.published == 2500 and publisher.pending() == 0
    messages = stream_messages(nats_server.url)
    assert [len(payload["beats"]) for _, payload in messages] == [1000, 1000, 500]
    assert len({msg_id for msg_id, _ in messages}) == 3  # one message id per group


def test_on_its_loop_a_caller_waits_for_the_store_and_a_bus_restart_loses_nothing(nats_server):
    """A caller is answered only once its beat is stored: while the server is down nobody is;
    a caller that waits past ACK_TIMEOUT_S gets BusUnavailable (503: the script sends the beat
    again), and the group is still stored once the server is back."""

    async def go() -> tuple[int, list[object], BeatPublisher]:
        bus = await Bus.connect(nats_server.url, "test")
        await bus.ensure_streams()
        publisher = BeatPublisher.on_loop(bus, SUBJECT)
        nats_server.stop()
        callers = [asyncio.ensure_future(publisher.publish_acked(b)) for b in beats(300, "out")]
        await asyncio.sleep(1.0)
        answered_while_down = sum(c.done() for c in callers)
        await asyncio.get_running_loop().run_in_executor(None, nats_server.start)
        outcomes = await asyncio.gather(*callers, return_exceptions=True)
        assert await publisher.drain(timeout_s=30.0)
        await bus.close()
        return answered_while_down, outcomes, publisher

    answered_while_down, outcomes, publisher = asyncio.run(go())
    assert answered_while_down == 0
    assert all(o is None or isinstance(o, BusUnavailable) for o in outcomes)
    stored = stored_beats(nats_server.url, expect=300)
    assert sorted(b["id"] for b in stored) == [f"out-{i:06d}" for i in range(300)]


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
        callers = [asyncio.ensure_future(publisher.publish_acked(b)) for b in beats(10, "full")]
        await asyncio.sleep(0)  # all ten queued; the flush comes a few ms later
        with pytest.raises(BusUnavailable):
            await publisher.publish_acked(beats(1, "one-too-many")[0])
        await asyncio.gather(*callers)
        assert await publisher.drain()
        await bus.close()

    asyncio.run(go())
    assert len(stored_beats(nats_server.url, expect=10)) == 10
