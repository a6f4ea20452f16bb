"""Tracking tests get a nats-server of their own, so the HEARTBEATS stream holds only theirs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.bus import MSG_ID_HEADER, Bus, decode
from common.nats_server import EmbeddedNatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


def stored_beats(url: str, expect: int = 0) -> list[dict]:
    """Every beat in the HEARTBEATS stream (the web tier publishes them in groups), once at
    least `expect` are there (publishing happens just after the 204)."""
    deadline = time.monotonic() + 10
    while True:
        beats = [beat for _, payload in stream_messages(url) for beat in payload["beats"]]
        if len(beats) >= expect or time.monotonic() > deadline:
            return beats
        time.sleep(0.05)


def stream_messages(url: str) -> list[tuple[str, dict]]:
    """Every message in the HEARTBEATS stream: (its Nats-Msg-Id, its payload)."""

    async def read() -> list[tuple[str, dict]]:
        bus = await Bus.connect(url, name="test")
        await bus.ensure_streams()
        info = await bus.js.stream_info("HEARTBEATS")
        found = []
        if not info.state.messages:
            await bus.close()
            return found
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await bus.js.get_msg("HEARTBEATS", seq)
            found.append((msg.headers[MSG_ID_HEADER], decode(msg.data)))
        await bus.close()
        return [f for f in found if f[1]]

    return asyncio.run(read())
