"""The web tier's one bus connection: an asyncio loop on a daemon thread.

nats-py is asyncio-only and the web tier is threaded WSGI, so every request publishes through
this single connection instead of opening an event loop (and a connection) per request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from common.bus import Bus

log = logging.getLogger(__name__)
T = TypeVar("T")


class BusUnavailable(RuntimeError):
    pass


class BusClient:
    def __init__(self, url: str | None, name: str = "manireports-web", *, replicas: int = 1):
        self.url = url
        self.name = name
        self.replicas = replicas
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="bus")
        self._thread.start()
        self._bus: Bus | None = None
        self._lock = threading.Lock()

    def _call(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def bus(self) -> Bus:
        with self._lock:
            if self._bus is None:
                if not self.url:
                    raise BusUnavailable("NATS_URL is not set")
                try:
                    self._bus = self._call(
                        Bus.connect(self.url, self.name, replicas=self.replicas), 10
                    )
                    self._call(self._bus.ensure_streams(), 10)
                except Exception as exc:
                    raise BusUnavailable(f"cannot reach the bus at {self.url}: {exc}") from exc
            return self._bus

    @property
    def connected(self) -> bool:
        return self._bus is not None and self._bus.nc.is_connected

    def publish(
        self, subject: str, payload: Mapping[str, Any], *, msg_id: str | None = None
    ) -> str:
        bus = self.bus()
        return self._call(bus.publish(subject, payload, msg_id=msg_id), 10)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run a plain callback on the bus loop, without waiting (batched publishing)."""
        self._loop.call_soon_threadsafe(callback)

    def run(self, coro_factory: Any, timeout_s: float = 10) -> Any:
        """Run `coro_factory(bus)` on the bus loop (for batches and requests)."""
        bus = self.bus()
        return self._call(coro_factory(bus), timeout_s)

    def close(self) -> None:
        if self._bus is not None:
            try:
                self._call(self._bus.close(), 5)
            except Exception as exc:  # noqa: BLE001 - closing at exit
                log.debug("bus close: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
