"""Killing one NATS server of three during heartbeat ingestion (issue 15): with NATS_REPLICAS=3
every acknowledged beat still ends up in the exact sessions and daily seconds."""

from __future__ import annotations

import asyncio
import random
import uuid

from common.appdb import AppDB
from common.bus import Bus, health_subject
from common.migrate import upgrade
from common.nats_server import EmbeddedNatsCluster
from tests.cluster_support import cluster, kill_leader, publish_surely
from tests.services.aggregator.test_heartbeat_pipeline import (
    actual_figures,
    expected_figures,
    plan_beats,
)
from tests.support import service_env, wait_for

__all__ = ["cluster"]  # a fixture


def test_heartbeats_survive_losing_the_heartbeat_streams_leader(
    tmp_path, cluster: EmbeddedNatsCluster, spawn_service
):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    appdb = AppDB(url)
    beats = plan_beats(random.Random(15), users=(101, 102, 103), courses=(2, 3))
    spawn_service("aggregator", service_env(tmp_path, cluster.url, NATS_REPLICAS="3"))

    async def publish_with_a_kill() -> str:
        bus = await Bus.connect(cluster.url, "test", replicas=3)
        killed = ""
        try:
            await bus.ensure_streams()
            # Ingestion under way: the aggregator is consuming before a server dies.
            while not await bus.gather(health_subject("aggregator"), {}, wait_s=0.3):
                await asyncio.sleep(0.2)
            for n, (user, course, cm, t) in enumerate(sorted(beats, key=lambda b: b[3])):
                if n == len(beats) // 2:
                    killed = await kill_leader(bus, cluster, "HEARTBEATS")
                beat_id = uuid.uuid4().hex
                # As the web tier publishes: a group of beats, acked by the stream.
                payload = {"beats": [{"id": beat_id, "u": user, "c": course, "m": cm, "t": t}]}
                await publish_surely(bus, "mr.heartbeat", payload, msg_id=f"hb:{beat_id}")
            return killed
        finally:
            await bus.close()

    try:
        killed = asyncio.run(publish_with_a_kill())
        assert killed.startswith("manireports-n")
        assert sum(1 for s in cluster.servers if s.alive()) == 2
        expected = expected_figures(beats)
        wait_for(lambda: actual_figures(appdb) == expected, timeout_s=90,
                 message="every beat applied after the fail-over")  # fmt: skip
    finally:
        appdb.dispose()
