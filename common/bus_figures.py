"""Operational figures read from JetStream: each stream's depth and each consumer's backlog,
redeliveries and unacknowledged messages. `manireports status` prints them and the /metrics
endpoints export them; both read them here, at the moment they are asked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from common.bus import KV_STREAM_PREFIX, Bus


@dataclass(frozen=True)
class ConsumerFigures:
    name: str
    pending: int  # stored, not yet delivered to this consumer (num_pending)
    ack_pending: int  # delivered, not yet acknowledged (num_ack_pending)
    redelivered: int  # delivered more than once and still unacknowledged (num_redelivered)


@dataclass(frozen=True)
class StreamFigures:
    name: str
    # Messages stored: on a work queue, what is still to be done (waiting or being worked on).
    messages: int
    replicas: int
    consumers: list[ConsumerFigures] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return sum(c.pending for c in self.consumers)

    @property
    def redelivered(self) -> int:
        return sum(c.redelivered for c in self.consumers)

    @property
    def ack_pending(self) -> int:
        return sum(c.ack_pending for c in self.consumers)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pending": self.pending, "redelivered": self.redelivered,
                "ack_pending": self.ack_pending}  # fmt: skip


async def stream_figures(bus: Bus) -> list[StreamFigures]:
    """Every stream but the KV buckets' (they are state, not queues), by name."""
    figures = []
    for info in await bus.js.streams_info():
        name = info.config.name or ""
        if name.startswith(KV_STREAM_PREFIX):
            continue
        consumers = [
            ConsumerFigures(
                c.name, c.num_pending or 0, c.num_ack_pending or 0, c.num_redelivered or 0
            )  # fmt: skip
            for c in await bus.js.consumers_info(name)
        ]
        figures.append(StreamFigures(name, info.state.messages, info.config.num_replicas or 1,
                                     sorted(consumers, key=lambda c: c.name)))  # fmt: skip
    return sorted(figures, key=lambda s: s.name)
