"""Process entry for services: settings, logging, bus connection and signal handling."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from common.bus import Bus
from common.service import Worker
from common.settings import Settings, SettingsError, load_settings

WorkerFactory = Callable[[Settings, Bus], Worker]


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def _run(factory: WorkerFactory, settings: Settings) -> None:
    if settings.nats_url is None:
        raise SettingsError(
            "NATS_URL: required to run a worker on its own (`manireports up` sets it)"
        )
    bus = await Bus.connect(
        settings.nats_url, name=f"manireports-{factory.__name__}", replicas=settings.nats_replicas
    )
    worker = factory(settings, bus)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    await worker.run()


def run_service(factory: WorkerFactory) -> int:
    configure_logging()
    try:
        settings = load_settings()
        asyncio.run(_run(factory, settings))
    except SettingsError as exc:
        print(f"manireports: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"manireports: cannot reach NATS_URL: {exc}", file=sys.stderr)
        return 3
    return 0
