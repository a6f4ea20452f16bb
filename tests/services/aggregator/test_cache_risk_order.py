"""The first dashboard cache is built after the first at-risk scoring: the scheduler fires
both at start (caches first), and a cache built before any score would read "0 flagged"."""

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, select

from common.analytics.caches import read_overview
from common.analytics.risk import last_scored
from common.bus import Bus
from common.migrate import upgrade
from common.models.analytics import RiskScore
from common.tenancy import SITE
from services.aggregator.worker import AggregatorWorker
from tests.factories.sites import NOW
from tests.support import make_settings


class Delivery:
    """Stands in for the NATS message of a command: the handlers only say "still working"."""

    def __init__(self) -> None:
        self.progress_reports = 0

    async def in_progress(self) -> None:
        self.progress_reports += 1


async def run_commands(settings, *commands):  # type: ignore[no-untyped-def]
    bus = await Bus.connect(settings.nats_url, "test-aggregator")
    worker = AggregatorWorker(settings, bus)
    worker.on_start_db()
    runs = []
    score = worker.jobs.risk_scores
    worker.jobs.risk_scores = lambda now=None, moodle=None, stored=None: (  # type: ignore[method-assign]
        runs.append(now) or score(now, moodle, stored)
    )
    try:
        handlers = worker.commands()
        await asyncio.gather(*(handlers[name]({"now": now}, Delivery()) for name, now in commands))
        return worker, runs
    finally:
        await worker.on_stop()
        await bus.close()


def test_a_first_cache_refresh_scores_first_and_later_ones_do_not(site, tmp_path, nats_server):
    settings = make_settings(tmp_path, MOODLE_DATABASE_URL=site.url, NATS_URL=nats_server.url)
    upgrade(settings.database_url)

    worker, runs = asyncio.run(run_commands(settings, ("refresh_caches", NOW)))
    assert runs == [NOW]
    with worker.appdb.transaction() as db:
        assert last_scored(db) == NOW
        flagged = db.scalar(select(func.count()).where(RiskScore.flagged.is_(True)))
        shown = read_overview(db, SITE, worker.jobs.source, datetime.now(UTC))
    assert shown is not None and shown.flagged_total == flagged > 0

    worker, runs = asyncio.run(run_commands(settings, ("refresh_caches", NOW + 900)))
    assert runs == []  # scored already: the daily run keeps them current
    with worker.appdb.transaction() as db:
        assert last_scored(db) == NOW


def test_scoring_and_caches_fired_together_score_once(site, tmp_path, nats_server):
    settings = make_settings(tmp_path, MOODLE_DATABASE_URL=site.url, NATS_URL=nats_server.url)
    upgrade(settings.database_url)
    worker, runs = asyncio.run(
        run_commands(settings, ("risk_scores", NOW), ("refresh_caches", NOW))
    )
    assert runs == [NOW]
    with worker.appdb.transaction() as db:
        shown = read_overview(db, SITE, worker.jobs.source, datetime.now(UTC))
    assert shown is not None and shown.flagged_total
