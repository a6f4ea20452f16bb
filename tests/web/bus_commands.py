"""What the web tier published: a nats-server of the test's own (the session's one would carry
other tests' commands) and the commands found in its COMMANDS stream. Import both into a test
module that counts published commands."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.bus import MSG_ID_HEADER, Bus, decode
from common.nats_server import EmbeddedNatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


def published(url: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(subject, message id, payload) of every message in the COMMANDS stream."""

    async def read() -> list[tuple[str, str, dict[str, Any]]]:
        bus = await Bus.connect(url, name="test")
        await bus.ensure_streams()
        info = await bus.js.stream_info("COMMANDS")
        found = []
        if info.state.messages:
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await bus.js.get_msg("COMMANDS", seq)
                found.append((msg.subject, msg.headers[MSG_ID_HEADER], decode(msg.data)))
        await bus.close()
        return found

    return asyncio.run(read())
