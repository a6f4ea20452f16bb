"""What the web tier holds for its lifetime: settings, the two databases and the bus."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common.appdb import AppDB
from common.moodle import MoodleSource
from common.settings import Settings
from web.bus_client import BusClient


@dataclass
class WebContext:
    settings: Settings
    appdb: AppDB
    moodle: MoodleSource
    bus_client: BusClient
    # Injectable so tests can pin "now" for date-range figures.
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    def build(cls, settings: Settings) -> WebContext:
        return cls(
            settings=settings,
            appdb=AppDB(settings.database_url),
            moodle=MoodleSource(settings.moodle_database_url, settings.moodle_prefix),
            bus_client=BusClient(settings.nats_url, replicas=settings.nats_replicas),
        )

    def close(self) -> None:
        self.bus_client.close()
        self.appdb.dispose()
        self.moodle.dispose()
