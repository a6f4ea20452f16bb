"""One database read per job per second, however many people watch it.

The job page polls `/jobs/progress` every second. Each web process keeps the last snapshot of
each job (`SnapshotCache`) and refreshes it at most once per MAX_AGE_S: the first poll after
that reads the database, polls arriving meanwhile wait for that one read (a lock per job)
instead of starting their own. So the database sees at most one snapshot statement per job per
second per web process, whether 1 or 500 browsers are open.

Which viewer may see which job is decided once by the scoped loader (`load_job`) and
remembered (`AccessMemo`): a job never changes company, so the answer for the same viewer,
the same tenant scope and the same job stays true; a viewer whose scope changed has a new key
and is checked again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from common.appdb import AppDB
from common.mail.monitor import JobSnapshot, read_snapshot
from common.models.base import utcnow

MAX_AGE_S = 1.0
MAX_JOBS = 1000


class SnapshotCache:
    def __init__(
        self,
        appdb: AppDB,
        *,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._appdb = appdb
        self._max_age_s = max_age_s
        self._clock = clock
        self._entries: OrderedDict[int, tuple[float, JobSnapshot | None]] = OrderedDict()
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def _fresh(self, job_id: int) -> tuple[bool, JobSnapshot | None]:
        entry = self._entries.get(job_id)
        if entry is not None and self._clock() - entry[0] < self._max_age_s:
            return True, entry[1]
        return False, None

    def get(self, job_id: int) -> JobSnapshot | None:
        """The job's snapshot, at most MAX_AGE_S old; None when there is no such job."""
        fresh, snapshot = self._fresh(job_id)
        if fresh:
            return snapshot
        with self._guard:
            lock = self._locks.setdefault(job_id, threading.Lock())
        with lock:
            fresh, snapshot = self._fresh(job_id)  # another poll refreshed it meanwhile
            if fresh:
                return snapshot
            with self._appdb.transaction() as session:
                snapshot = read_snapshot(session, job_id, utcnow())
            with self._guard:
                self._entries[job_id] = (self._clock(), snapshot)
                self._entries.move_to_end(job_id)
                while len(self._entries) > MAX_JOBS:
                    old, _ = self._entries.popitem(last=False)
                    self._locks.pop(old, None)
            return snapshot

    def forget(self, job_id: int) -> None:
        """After this process changed the job (cancel, retry): the next poll reads anew."""
        with self._guard:
            self._entries.pop(job_id, None)


class AccessMemo:
    """(viewer, tenant scope, job) triples the scoped loader allowed, most recent kept."""

    def __init__(self, size: int = 10_000) -> None:
        self._allowed: OrderedDict[Hashable, None] = OrderedDict()
        self._size = size
        self._guard = threading.Lock()

    def allowed(self, key: Hashable) -> bool:
        with self._guard:
            if key in self._allowed:
                self._allowed.move_to_end(key)
                return True
            return False

    def remember(self, key: Hashable) -> None:
        with self._guard:
            self._allowed[key] = None
            while len(self._allowed) > self._size:
                self._allowed.popitem(last=False)
