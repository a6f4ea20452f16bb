"""The aggregator's scheduled jobs, each one call into `common.analytics`.

Run in a worker thread by the command handlers; each reads the Moodle DB through the
read-only source and writes the app DB in short transactions of its own.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.analytics.caches import MoodleTrends, read_moodle_trends, refresh_caches
from common.analytics.engagement import refresh_engagement
from common.analytics.log_estimate import estimate_time_from_log
from common.analytics.risk import (
    MoodleFigures,
    compute_risk_scores,
    last_scored,
    read_moodle_figures,
    stored_scores,
)
from common.analytics.scorm import update_scorm_summary
from common.appdb import AppDB
from common.moodle import MoodleSource
from common.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Jobs:
    settings: Settings
    appdb: AppDB
    source: MoodleSource
    last_runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _timed(self, name: str, figures: dict[str, Any], started: float) -> dict[str, Any]:
        figures = {**figures, "seconds": round(time.perf_counter() - started, 2)}
        self.last_runs[name] = figures
        log.info("%s: %s", name, figures)
        return figures

    def estimate_time(self) -> dict[str, Any]:
        started = time.perf_counter()
        run = estimate_time_from_log(self.appdb, self.source, gap_s=self.settings.session_timeout_s)
        figures = {"spans": run.spans_read, "sessions": run.sessions_written}
        return self._timed("estimate_time", figures, started)

    def scorm_summary(self, full: bool = False) -> dict[str, Any]:
        started = time.perf_counter()
        run = update_scorm_summary(self.appdb, self.source, full=full)
        return self._timed("scorm_summary", {"layout": run.layout, "pairs": run.pairs}, started)

    def engagement(self, now: float | None = None) -> dict[str, Any]:
        started = time.perf_counter()
        today = datetime.fromtimestamp(now or time.time(), UTC).date()
        rows = refresh_engagement(self.appdb, self.source, self.settings, today=today)
        return self._timed("engagement", {"rows": rows}, started)

    def risk_scores(
        self,
        now: float | None = None,
        moodle: MoodleFigures | None = None,
        stored: dict[tuple[int, int], Any] | None = None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        newly = compute_risk_scores(self.appdb, self.source, now=int(now or time.time()),
                                    flag_score=self.settings.risk_flag_score,
                                    moodle=moodle, stored=stored)  # fmt: skip
        return self._timed("risk_scores", {"newly_flagged": len(newly)}, started)

    def scored(self) -> bool:
        """Whether at-risk scores have been computed at least once."""
        with self.appdb.transaction() as session:
            return last_scored(session) is not None

    def refresh_caches(
        self, now: float | None = None, moodle: MoodleTrends | None = None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        stored = refresh_caches(self.appdb, self.source, ttl_s=self.settings.cache_ttl_s,
                                now=int(now or time.time()), moodle=moodle)  # fmt: skip
        return self._timed("refresh_caches", {"entries": stored}, started)

    def preaggregate(self, now: float | None = None, full_scorm: bool = False) -> dict[str, Any]:
        """Everything, in dependency order: time, SCORM, engagement, risk, then the caches."""
        started = time.perf_counter()
        at = int(now or time.time())
        # Reads that wait on no step run in a second thread while the main one works in
        # Python or waits on the database: the SCORM summary and the enrolments scoring reads
        # beside the log estimate (mostly Python), the stored scores and the caches' Moodle
        # trends beside engagement (one grouped INSERT ... SELECT in the database). Scoring and
        # the caches themselves stay one after the other: both are mostly Python, and
        # overlapping them was slower.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="preaggregate") as beside:
            scorm = beside.submit(self.scorm_summary, full_scorm)
            enrolments = beside.submit(read_moodle_figures, self.source, at)
            steps = {"estimate_time": self.estimate_time(), "scorm_summary": scorm.result()}
            stored = beside.submit(stored_scores, self.appdb)
            trends = beside.submit(read_moodle_trends, self.appdb, self.source, at)
            steps["engagement"] = self.engagement(at)
            steps["risk_scores"] = self.risk_scores(at, enrolments.result(), stored.result())
            steps["refresh_caches"] = self.refresh_caches(at, trends.result())
        return self._timed("preaggregate", {"steps": steps}, started)
