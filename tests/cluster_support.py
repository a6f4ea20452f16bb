"""A 3-node JetStream cluster of real nats-servers for a test, and publishing through a
fail-over (issue 15)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.js.kv import KeyValue

from common.bus import Bus
from common.nats_server import EmbeddedNatsCluster, EmbeddedNatsServer, NatsServerError


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedNatsCluster]:
    try:
        nodes = EmbeddedNatsCluster(tmp_path / "cluster", 3).start()
    except (NatsServerError, OSError) as exc:
        pytest.skip(f"cannot run the bundled nats-server as a cluster: {exc}")
    yield nodes
    nodes.stop()


async def surely(attempt: Callable[[], Awaitable[Any]]) -> None:
    """Retry `attempt` for up to 30 s: a loaded cluster answers "no responders" while a stream
    it just created, or one whose leader died, elects a leader."""
    deadline = time.monotonic() + 30
    while True:
        try:
            await attempt()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def publish_surely(bus: Bus, subject: str, payload: dict[str, Any], msg_id: str) -> None:
    """Publish until acknowledged: the stream's duplicate window makes a retry of a publish
    that was stored after all a no-op."""
    await surely(lambda: bus.publish(subject, payload, msg_id=msg_id))


async def put_surely(kv: KeyValue, key: str, value: bytes) -> None:
    """Put until acknowledged (the same value, so a retry of one that landed is harmless)."""
    await surely(lambda: kv.put(key, value))


async def kill_leader(bus: Bus, cluster: EmbeddedNatsCluster, stream: str) -> str:
    """SIGKILL the server leading `stream`; returns its name."""
    info = await bus.js.stream_info(stream)
    assert info.cluster is not None and info.cluster.leader
    victim = next(s for s in cluster.servers if server_name(s) == info.cluster.leader)
    victim.kill()
    return info.cluster.leader


def server_name(server: EmbeddedNatsServer) -> str:
    assert server.cluster is not None
    return server.cluster.server_name
