"""The clustered bus (issue 15): NATS_REPLICAS on new and existing streams and KV buckets, and
a 3-node JetStream cluster of real nats-servers that loses nothing when one server dies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.bus import (
    KV_STREAM_PREFIX,
    STREAMS,
    Bus,
    BusConfigError,
    ConsumerSpec,
    command_subject,
    decode,
)
from common.nats_server import EmbeddedNatsCluster, EmbeddedNatsServer, NatsServerError
from common.settings import SettingsError, load_settings
from tests.cluster_support import cluster, kill_leader, publish_surely, put_surely

__all__ = ["cluster"]  # a fixture


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def single(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    try:
        server = EmbeddedNatsServer(tmp_path / "single").start()
    except (NatsServerError, OSError) as exc:
        pytest.skip(f"cannot run the bundled nats-server: {exc}")
    yield server
    server.stop()


async def replicas_of(bus: Bus, stream: str) -> tuple[int, int]:
    """(configured replicas, servers holding it: the leader and its peers)."""
    info = await bus.js.stream_info(stream)
    assert info.cluster is not None
    return info.config.num_replicas or 1, 1 + len(info.cluster.replicas or [])


# -- NATS_REPLICAS the setting --------------------------------------------------------------


def test_nats_replicas_defaults_to_one_and_is_read(tmp_path: Path) -> None:
    base = {"MANIREPORTS_INSTANCE": str(tmp_path)}
    assert load_settings(base).nats_replicas == 1
    assert load_settings({**base, "NATS_REPLICAS": "3"}).nats_replicas == 3


@pytest.mark.parametrize("raw", ["0", "6", "three"])
def test_nats_replicas_out_of_range_is_refused_by_name(tmp_path: Path, raw: str) -> None:
    with pytest.raises(SettingsError, match="NATS_REPLICAS"):
        load_settings({"MANIREPORTS_INSTANCE": str(tmp_path), "NATS_REPLICAS": raw})


# -- the cluster ----------------------------------------------------------------------------


def test_three_node_cluster_comes_up_with_routes_and_own_stores(
    cluster: EmbeddedNatsCluster,
) -> None:
    assert all(server.alive() for server in cluster.servers)
    assert len({server.port for server in cluster.servers}) == 3
    assert len({server.data_dir for server in cluster.servers}) == 3
    assert cluster.url.count("nats://") == 3

    async def scenario() -> tuple[int, int]:
        bus = await Bus.connect(cluster.url, "test", replicas=3)
        try:
            await bus.ensure_streams()
            return await replicas_of(bus, "COMMANDS")
        finally:
            await bus.close()

    # Three servers hold the stream: they are routed together into one JetStream cluster.
    assert run(scenario()) == (3, 3)
    assert all(list(server.data_dir.glob("jetstream")) for server in cluster.servers)


def test_every_stream_is_created_with_nats_replicas(cluster: EmbeddedNatsCluster) -> None:
    async def scenario() -> dict[str, tuple[int, int]]:
        bus = await Bus.connect(cluster.url, "test", replicas=3)
        try:
            await bus.ensure_streams()
            await bus.ensure_streams()  # idempotent at R3 too
            return {spec.name: await replicas_of(bus, spec.name) for spec in STREAMS}
        finally:
            await bus.close()

    assert run(scenario()) == {spec.name: (3, 3) for spec in STREAMS}


def test_an_r1_stream_with_messages_is_updated_to_r3_and_keeps_them(
    cluster: EmbeddedNatsCluster,
) -> None:
    async def scenario() -> tuple[tuple[int, int], tuple[int, int], int, list[int]]:
        before = await Bus.connect(cluster.url, "before", replicas=1)
        await before.ensure_streams()
        created = (await before.js.stream_info("COMMANDS")).created
        for n in range(40):
            await publish_surely(before, command_subject("grow", "n"), {"n": n}, f"grow-{n}")
        r1 = await replicas_of(before, "COMMANDS")
        await before.close()

        after = await Bus.connect(cluster.url, "after", replicas=3)
        try:
            await after.ensure_streams()
            info = await after.js.stream_info("COMMANDS")
            r3 = await replicas_of(after, "COMMANDS")
            assert info.created == created  # updated in place, not recreated
            sub = await after.pull(
                ConsumerSpec("COMMANDS", "grow", command_subject("grow", ">"), ack_wait_s=5)
            )
            msgs = await sub.fetch(100, timeout=2)
            for msg in msgs:
                await msg.ack()
            return r1, r3, info.state.messages, [decode(m.data)["n"] for m in msgs]
        finally:
            await after.close()

    r1, r3, stored, consumed = run(scenario())
    assert r1 == (1, 1)
    assert r3 == (3, 3)
    assert stored == 40
    assert consumed == list(range(40))


def test_a_kv_bucket_is_created_with_and_updated_to_nats_replicas(
    cluster: EmbeddedNatsCluster,
) -> None:
    async def scenario() -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], bytes]:
        one = await Bus.connect(cluster.url, "one", replicas=1)
        kv = await one.key_value("grown", ttl_s=60)
        await put_surely(kv, "lease", b"holder-1")
        r1 = await replicas_of(one, KV_STREAM_PREFIX + "grown")
        await one.close()

        three = await Bus.connect(cluster.url, "three", replicas=3)
        try:
            kv = await three.key_value("grown", ttl_s=60)
            kept = (await kv.get("lease")).value or b""
            fresh = await three.key_value("fresh", ttl_s=60)
            await put_surely(fresh, "k", b"v")
            return (
                r1,
                await replicas_of(three, KV_STREAM_PREFIX + "grown"),
                await replicas_of(three, KV_STREAM_PREFIX + "fresh"),
                kept,
            )
        finally:
            await three.close()

    grown_before, grown_after, fresh, kept = run(scenario())
    assert grown_before == (1, 1)
    assert grown_after == (3, 3)
    assert fresh == (3, 3)
    assert kept == b"holder-1"


def test_the_run_limiter_bucket_goes_through_the_same_replicas(
    cluster: EmbeddedNatsCluster,
) -> None:
    from common.run_limit import KvRunLimiter

    class Runner:
        def __init__(self, bus: Bus) -> None:
            self.bus_ = bus

        def run(self, factory, timeout_s: float = 10):  # type: ignore[no-untyped-def]
            raise AssertionError("not used")

    async def scenario() -> tuple[int, int]:
        bus = await Bus.connect(cluster.url, "limiter", replicas=3)
        try:
            limiter = KvRunLimiter(Runner(bus), 2, prefix="test_runs")  # type: ignore[arg-type]
            await limiter._buckets(bus)
            return await replicas_of(bus, KV_STREAM_PREFIX + limiter.slots_bucket)
        finally:
            await bus.close()

    assert run(scenario()) == (3, 3)


def test_more_replicas_than_servers_is_refused_by_name(
    cluster: EmbeddedNatsCluster, single: EmbeddedNatsServer
) -> None:
    async def refused(url: str, replicas: int, kv: bool) -> str:
        bus = await Bus.connect(url, "test", replicas=replicas)
        try:
            if kv:
                await bus.key_value("too_many")
            else:
                await bus.ensure_streams()
        except BusConfigError as exc:
            return str(exc)
        finally:
            await bus.close()
        raise AssertionError("accepted")

    assert "NATS_REPLICAS" in run(refused(single.url, 3, kv=False))
    assert "NATS_REPLICAS" in run(refused(single.url, 3, kv=True))
    assert "at least 5 servers" in run(refused(cluster.url, 5, kv=False))
    assert "at least 5 servers" in run(refused(cluster.url, 5, kv=True))


# -- losing one server of three -------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "subject", "durable"),
    [
        ("COMMANDS", command_subject("chaos", "run"), "chaos-commands"),
        ("HEARTBEATS", "mr.heartbeat", "chaos-beats"),
    ],
)
def test_killing_one_nats_server_of_three_loses_nothing(
    cluster: EmbeddedNatsCluster, stream: str, subject: str, durable: str
) -> None:
    total = 300

    async def scenario() -> tuple[str, int, list[int]]:
        bus = await Bus.connect(cluster.url, "chaos", replicas=3)
        try:
            await bus.ensure_streams()
            spec = ConsumerSpec(stream, durable, subject, ack_wait_s=5)
            await bus.ensure_consumer(spec)
            sub = await bus.pull(spec)
            received: list[int] = []
            killed = ""
            for n in range(total):
                if n == total // 2:
                    # The stream's leader: its followers must elect another one and carry on.
                    killed = await kill_leader(bus, cluster, stream)
                await publish_surely(bus, subject, {"n": n}, msg_id=f"{durable}-{n}")
                if n == total // 4:  # consume some before the kill, the rest after
                    received += await drain(sub, limit=total)
            deadline = time.monotonic() + 30
            while len(set(received)) < total and time.monotonic() < deadline:
                received += await drain(sub, limit=total)
            alive = sum(1 for s in cluster.servers if s.alive())
            return killed, alive, received
        finally:
            await bus.close()

    killed, alive, received = run(scenario())
    assert killed.startswith("manireports-n")
    assert alive == 2
    missing = set(range(total)) - set(received)
    assert not missing, f"lost {len(missing)} of {total}"
    # Every publish was stored once (duplicate window); an ack lost in the fail-over may
    # redeliver a message, never more than a handful.
    assert len(received) - total <= 10


async def drain(sub, limit: int) -> list[int]:  # type: ignore[no-untyped-def]
    got: list[int] = []
    try:
        msgs = await sub.fetch(limit, timeout=1)
    except Exception:  # noqa: BLE001 - timeout, or the fail-over still under way
        return got
    for msg in msgs:
        got.append(decode(msg.data)["n"])
        try:
            await msg.ack_sync()
        except Exception:  # noqa: BLE001 - lost ack: redelivered, counted above
            pass
    return got


def test_a_worker_waits_for_the_cluster_to_elect_a_leader(tmp_path: Path) -> None:
    """One server of three up: no JetStream leader, every API call times out. A worker
    started then waits (it used to exit) and serves once the others join."""
    from common.service import Worker
    from tests.support import make_settings

    nodes = EmbeddedNatsCluster(tmp_path / "cluster", 3)
    try:
        nodes.servers[0].start()
    except (NatsServerError, OSError) as exc:
        pytest.skip(f"cannot run the bundled nats-server: {exc}")

    async def scenario() -> tuple[bool, bool]:
        bus = await Bus.connect(nodes.servers[0].url, "waiting")
        worker = Worker(make_settings(tmp_path), bus)
        running = asyncio.create_task(worker.run())
        probe = await Bus.connect(nodes.servers[0].url, "probe")
        try:
            await asyncio.sleep(3)
            answered_alone = bool(await probe.gather("mr.health.worker", {}, wait_s=0.5))
            still_running = not running.done()
            await asyncio.to_thread(lambda: [s.start() for s in nodes.servers[1:]])
            deadline = time.monotonic() + 45
            while not await probe.gather("mr.health.worker", {}, wait_s=0.5):
                assert time.monotonic() < deadline, "the worker never started"
                assert not running.done(), running.exception()
            return answered_alone, still_running
        finally:
            worker.request_stop()
            await asyncio.wait_for(running, 30)
            await probe.close()

    try:
        answered_alone, still_running = run(scenario())
    finally:
        nodes.stop()
    assert still_running and not answered_alone
