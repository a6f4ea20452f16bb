"""The benches' SMTP sink: an aiosmtpd server in a process of its own recording each
recipient's arrival time, optionally answering each message only after a set latency.

The latency stands for a real relay or provider API, tens of milliseconds away: with none, a
bench on one machine measures CPU (the sink's included); with some, it measures what more
senders buy when each waits on the network, as production senders do.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections import Counter

from common.nats_server import free_port


def _sink_main(port: int, conn, latency_s) -> None:  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller

    lock = threading.Lock()
    arrivals: list[tuple[float, str]] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
            if latency_s.value > 0:
                await asyncio.sleep(latency_s.value)
            now = time.time()
            with lock:
                arrivals.extend((now, rcpt.lower()) for rcpt in envelope.rcpt_tos)
            return "250 2.0.0 OK: queued"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    conn.send("ready")
    while (command := conn.recv()) != "stop":
        with lock:
            if command == "reset":
                arrivals.clear()
                conn.send("ok")
            else:  # a recipient prefix
                conn.send([a for a in arrivals if a[1].startswith(command)])
    controller.stop()


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        self._latency = multiprocessing.Value("d", 0.0)
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(
            target=_sink_main, args=(self.port, child, self._latency)
        )
        self._process.start()
        assert self._conn.recv() == "ready"

    def set_latency(self, seconds: float) -> None:
        self._latency.value = seconds

    def arrivals(self, prefix: str = "") -> list[tuple[float, str]]:
        """(arrival time, recipient) of every message to a recipient starting with `prefix`."""
        self._conn.send(prefix)
        return list(self._conn.recv())

    def stats(self, prefix: str = "") -> tuple[int, int]:
        """Distinct recipients and messages received."""
        counts = Counter(rcpt for _, rcpt in self.arrivals(prefix))
        return len(counts), sum(counts.values())

    def times(self, prefix: str = "") -> list[float]:
        return sorted(t for t, _ in self.arrivals(prefix))

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(10)
