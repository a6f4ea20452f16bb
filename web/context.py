"""What the web tier holds for its lifetime: settings, the two databases and the bus."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from common.appdb import AppDB
from common.db import make_engine
from common.settings import Settings
from web.bus_client import BusClient


@dataclass
class WebContext:
    settings: Settings
    appdb: AppDB
    moodle_engine: Engine
    bus_client: BusClient

    @classmethod
    def build(cls, settings: Settings) -> WebContext:
        return cls(
            settings=settings,
            appdb=AppDB(settings.database_url),
            moodle_engine=make_engine(settings.moodle_database_url, read_only=True),
            bus_client=BusClient(settings.nats_url),
        )

    def close(self) -> None:
        self.bus_client.close()
        self.appdb.dispose()
        self.moodle_engine.dispose()
