"""An HR sync wired to the local BambooHR and Moodle REST servers, on each app database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.hrsync.bamboohr import BambooHR
from common.hrsync.engine import Summary, run_sync
from common.hrsync.moodlews import MoodleWS
from common.hrsync.settings import load_hr_settings
from common.models.access import AuditLog
from common.models.hrsync import SETTINGS_ROW, HrSyncCursor, HrSyncRun
from common.settings import Settings
from tests.fakes.bamboohr_server import BambooHrServer
from tests.fakes.moodle_ws_server import MoodleWsServer
from tests.support import make_settings


@dataclass
class SyncHarness:
    appdb: AppDB
    settings: Settings
    bamboo: BambooHrServer
    moodle: MoodleWsServer
    env: dict[str, str]
    waits: list[float] = field(default_factory=list)  # back-off sleeps, BambooHR's and Moodle's

    def run(self, *, dry_run: bool = False, trigger: str = "cli", **env: str) -> Summary:
        """One run with the servers' addresses and secrets in the environment (plus ``env``);
        sleeps are recorded, not slept."""
        hr = load_hr_settings(self.appdb, self.settings, {**self.env, **env})
        bamboohr = BambooHR(hr.bamboohr_base_url, hr.bamboohr_api_key, sleep=self.waits.append)
        moodle = MoodleWS(hr.moodle_ws_url, hr.moodle_ws_token, sleep=self.waits.append)
        try:
            return run_sync(self.appdb, self.settings, hr, dry_run=dry_run, trigger=trigger,
                            bamboohr=bamboohr, moodle=moodle)  # fmt: skip
        finally:
            bamboohr.close()
            moodle.close()

    def cursor(self) -> dict[str, Any] | None:
        with self.appdb.transaction() as session:
            row = session.get(HrSyncCursor, SETTINGS_ROW)
            return None if row is None else {"since": row.since, "offset": row.offset}

    def runs(self) -> list[HrSyncRun]:
        with self.appdb.transaction() as session:
            return list(session.scalars(select(HrSyncRun).order_by(HrSyncRun.id)))

    def audits(self) -> list[dict[str, Any]]:
        with self.appdb.transaction() as session:
            rows = session.scalars(select(AuditLog).where(AuditLog.action == "hr_sync_run"))
            return [{"object_id": r.object_id, "outcome": r.outcome,
                     "details": json.loads(r.details or "{}")} for r in rows]  # fmt: skip

    def writes(self) -> int:
        return self.moodle.count("core_user_create_users") + self.moodle.count(
            "core_user_update_users"
        )


@pytest.fixture
def hr_appdb(app_db_url: str) -> Iterator[AppDB]:
    db = AppDB(app_db_url)
    yield db
    db.dispose()


@pytest.fixture
def hr_settings(tmp_path: Path, app_db_url: str) -> Settings:
    return make_settings(tmp_path, DATABASE_URL=app_db_url)


@pytest.fixture
def sync(
    hr_appdb: AppDB,
    hr_settings: Settings,
    bamboohr_server: BambooHrServer,
    moodle_ws_server: MoodleWsServer,
) -> SyncHarness:
    env = {**bamboohr_server.env, **moodle_ws_server.env}
    return SyncHarness(hr_appdb, hr_settings, bamboohr_server, moodle_ws_server, env)
