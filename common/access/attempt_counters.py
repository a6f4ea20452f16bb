"""Atomic attempt counters: reserve one attempt in a bucket, or learn that the bucket is full.

Each bucket is one row (`manireports_signin_counters`) counting attempts since its window
started. `reserve` increments it with one conditional UPDATE (`… WHERE bucket = ? AND
(window expired OR attempts < limit)`) in a transaction of its own, committed before the caller
goes on, so any number of concurrent requests on any number of web replicas can never reserve
more than `limit` attempts per window: the database serialises the updates of one row. A first
attempt INSERTs the row; a racing duplicate insert, or a row that appeared after the UPDATE
looked, is retried as an update.

Bucket names are hashed (SHA-256), so the key is short whatever it is made of and the table
holds no usernames or addresses.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import Engine, Table, case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from common.models.access import SigninCounter

INSERT_RACES = 3  # a duplicate-key race resolves in one retry; more means something is wrong
PURGE_AFTER = timedelta(days=1)
COUNTERS: Table = SigninCounter.__table__  # type: ignore[assignment]


def bucket_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


class AttemptCounters:
    def __init__(self, engine: Engine):
        self.engine = engine

    def reserve(self, name: str, limit: int, window: timedelta, now: datetime) -> bool:
        """Take one attempt in bucket `name` if fewer than `limit` were taken in its window."""
        if limit < 1:
            return False
        key = bucket_key(name)
        table = COUNTERS
        expired = table.c.window_start <= now - window
        # MariaDB applies SET assignments left to right, each seeing the ones before it: the
        # count must be computed while window_start still holds the old value.
        take = (
            update(table)
            .where(table.c.bucket == key, expired | (table.c.attempts < limit))
            .ordered_values(
                (table.c.attempts, case((expired, 1), else_=table.c.attempts + 1)),
                (table.c.window_start, case((expired, now), else_=table.c.window_start)),
            )
        )
        for _ in range(INSERT_RACES):
            with self.engine.begin() as conn:
                if conn.execute(take).rowcount == 1:
                    return True
                found = select(table.c.attempts, table.c.window_start).where(table.c.bucket == key)
                row = conn.execute(found).first()
            if row is not None:
                if row.window_start > now - window and row.attempts >= limit:
                    return False  # the bucket is full
                # The row was created after the UPDATE looked (a racing first attempt; under
                # PostgreSQL's READ COMMITTED this read sees it, the UPDATE did not): take again.
                continue
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(table).values(bucket=key, attempts=1, window_start=now))
                return True
            except IntegrityError:
                continue  # another request created the row first: count on it
        raise RuntimeError(f"attempt counter {key} could be neither updated nor created")

    def release(self, name: str) -> None:
        """Give back one reserved attempt (it turned out not to be a failure)."""
        table = COUNTERS
        with self.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.bucket == bucket_key(name), table.c.attempts > 0)
                .values(attempts=table.c.attempts - 1)
            )

    def clear(self, name: str) -> None:
        """Forget the bucket's attempts (a successful sign-in clears its own client's failures)."""
        table = COUNTERS
        with self.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.bucket == bucket_key(name)))

    def attempts(self, name: str) -> int:
        table = COUNTERS
        with self.engine.connect() as conn:
            value = conn.scalar(select(table.c.attempts).where(table.c.bucket == bucket_key(name)))
        return int(value or 0)

    def purge(self, now: datetime) -> int:
        """Delete buckets whose window ended more than a day ago; returns how many."""
        table = COUNTERS
        with self.engine.begin() as conn:
            result = conn.execute(delete(table).where(table.c.window_start < now - PURGE_AFTER))
        return int(result.rowcount or 0)
