"""The replicas' heartbeats that `manireports status` lists (common/service_beats.py), on a
nats-server of the test's own so no other test's replicas are in the bucket."""

import asyncio
import time

import pytest

from common.bus import Bus
from common.nats_server import EmbeddedNatsServer
from common.service_beats import BEAT_TTL_S, BUCKET, beat_key, read_beats, write_beat


@pytest.fixture
def own_nats(tmp_path):
    server = EmbeddedNatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


def on_bus(url, scenario):
    async def run():
        bus = await Bus.connect(url, name="test-beats")
        try:
            return await scenario(bus)
        finally:
            await bus.close()

    return asyncio.run(run())


def test_no_bucket_yet_means_no_replicas_and_reading_does_not_create_it(own_nats):
    async def scenario(bus):
        beats = await read_beats(bus)
        names = [s.config.name for s in await bus.js.streams_info()]
        return beats, names

    beats, names = on_bus(own_nats.url, scenario)
    assert beats == []
    assert "KV_" + BUCKET not in names


def test_lists_each_replica_once_newest_first_and_skips_deleted_keys(own_nats):
    async def scenario(bus):
        kv = await bus.key_value(BUCKET, ttl_s=BEAT_TTL_S)
        for instance in ("host-a:1", "host-b:2", "host-c:3"):
            await write_beat(kv, {"service": "mailer", "instance": instance, "healthy": True})
            await asyncio.sleep(0.01)
        await write_beat(kv, {"service": "mailer", "instance": "host-a:1", "healthy": False})
        await kv.delete(beat_key("mailer", "host-b:2"))
        return await read_beats(bus)

    beats = on_bus(own_nats.url, scenario)
    assert [(b["instance"], b["healthy"]) for b in beats] == [
        ("host-a:1", False),  # its second beat is the newest
        ("host-c:3", True),
    ]
    assert time.time() - beats[0]["at"] < 30


def test_every_replica_is_listed_on_every_read_while_they_keep_beating(own_nats):
    """The reader once listed keys by watching the bucket, which could report none while the
    replicas were writing: `status` then showed a running service as never heard of."""
    instances = [f"host:{n}" for n in range(4)]

    async def scenario(bus):
        kv = await bus.key_value(BUCKET, ttl_s=BEAT_TTL_S)

        async def beat_on(instance):
            while True:
                await write_beat(kv, {"service": "sync", "instance": instance, "healthy": True})
                await asyncio.sleep(0.005)

        writers = [asyncio.create_task(beat_on(i)) for i in instances]
        await asyncio.sleep(0.1)
        try:
            return [sorted(b["instance"] for b in await read_beats(bus)) for _ in range(40)]
        finally:
            for task in writers:
                task.cancel()
            await asyncio.gather(*writers, return_exceptions=True)

    reads = on_bus(own_nats.url, scenario)
    assert all(read == instances for read in reads)
