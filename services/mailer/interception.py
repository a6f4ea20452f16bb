"""Taking IOMAD's queued emails away from Moodle's cron: the one write to the Moodle DB.

IOMAD writes one `email` row per templated message and its cron sends rows whose `sent` is
NULL. A watcher claims rows of offloaded templates for enabled companies in three steps:

1. `UPDATE email SET sent = <marker> WHERE id IN (…) AND sent IS NULL` — the marker is a
   negative number unique to this claim (claim time in µs, plus a random part). Only one
   watcher's UPDATE can change a row from NULL, on SQLite and on MariaDB alike, and from
   then on Moodle's cron no longer sees the row as unsent.
2. The rows carrying this marker become recipients of a job in the app DB (their full
   content kept in `recipient_data`), each with `source_ref = iomad_email:<id>` (unique).
3. `sent` is set to the claim time: IOMAD's own pages show when the row was handed over.

A watcher that dies between 1 and 3 leaves rows with a negative `sent`; after
`STALE_CLAIM_S` a later watcher re-claims them (again with one conditional UPDATE) and
creates the recipients that are not in the app DB yet. Nothing is lost or sent twice.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, and_, inspect, select
from sqlalchemy.orm import Session

from common.appdb import AppDB
from common.mail.config import OFFLOADABLE_EVENTS, CompanyMailConfig, enabled_configs
from common.mail.jobs import create_job
from common.mail.recipients import RecipientSpec
from common.models.mail import CloudRecipient
from common.moodle.tables import MoodleTables

STALE_CLAIM_S = 300
CLAIM_LIMIT = 5000
MICRO = 1_000_000
USER_FIELDS = ("username", "firstname", "lastname", "email")


def claim_marker(now: float) -> int:
    return -(int(now) * MICRO + random.randrange(MICRO))  # noqa: S311 - uniqueness, not secrecy


def claim_email_queue_rows(
    moodle: Engine,
    tables: MoodleTables,
    appdb: AppDB,
    secret_key: str,
    *,
    limit: int = CLAIM_LIMIT,
    now: float | None = None,
) -> list[int]:
    """Claim offloadable unsent rows and turn them into jobs; the new jobs' ids."""
    now = time.time() if now is None else now
    with appdb.transaction() as session:
        configs = [c for c in enabled_configs(session, secret_key) if c.offloaded_events]
    if not configs or not inspect(moodle).has_table(tables.email.name):
        return []  # nothing offloaded, or a plain Moodle without IOMAD's queue
    email = tables.email
    marker = claim_marker(now)
    stale_bound = -int(now - STALE_CLAIM_S) * MICRO
    wanted = _wanted(configs)
    with moodle.begin() as conn:
        # Rows another watcher claimed and never finished (it died): ours now.
        conn.execute(
            email.update().where(email.c.sent < 0, email.c.sent > stale_bound).values(sent=marker)
        )
    with moodle.connect() as conn:
        candidates = [
            row.id
            for row in conn.execute(
                select(email.c.id, email.c.companyid, email.c.templatename)
                .where(
                    email.c.sent.is_(None),
                    email.c.due <= int(now),
                    email.c.companyid.in_(sorted({c for c, _ in wanted})),
                    email.c.templatename.in_(sorted({t for _, t in wanted})),
                )
                .order_by(email.c.id)
                .limit(limit)
            )
            if (row.companyid, row.templatename) in wanted
        ]
    for start in range(0, len(candidates), 500):
        with moodle.begin() as conn:
            conn.execute(
                email.update()
                .where(email.c.id.in_(candidates[start : start + 500]), email.c.sent.is_(None))
                .values(sent=marker)
            )
    rows = _claimed_rows(moodle, tables, marker)
    job_ids: list[int] = []
    if rows:
        chunk_sizes = {c.company_id: c.chunk_size for c in configs}
        with appdb.transaction() as session:
            job_ids = _create_jobs(session, rows, chunk_sizes)
    with moodle.begin() as conn:
        conn.execute(email.update().where(email.c.sent == marker).values(sent=int(now)))
    return job_ids


def _wanted(configs: Sequence[CompanyMailConfig]) -> set[tuple[int, str]]:
    return {
        (config.company_id, event)
        for config in configs
        for event in config.offloaded_events
        if event in OFFLOADABLE_EVENTS
    }


def _claimed_rows(moodle: Engine, tables: MoodleTables, marker: int) -> list[dict[str, Any]]:
    email, user = tables.email, tables.user
    query = (
        select(email, *(user.c[name].label(f"user_{name}") for name in USER_FIELDS))
        .select_from(email.outerjoin(user, and_(user.c.id == email.c.userid)))
        .where(email.c.sent == marker)
        .order_by(email.c.id)
    )
    with moodle.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def _create_jobs(
    session: Session, rows: list[dict[str, Any]], chunk_sizes: dict[int, int]
) -> list[int]:
    refs = [f"iomad_email:{row['id']}" for row in rows]
    known: set[str] = set()
    for start in range(0, len(refs), 500):
        known.update(
            session.scalars(
                select(CloudRecipient.source_ref).where(
                    CloudRecipient.source_ref.in_(refs[start : start + 500])
                )
            )
        )
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if f"iomad_email:{row['id']}" not in known:
            groups[(row["companyid"], row["templatename"])].append(row)
    job_ids = []
    for (company_id, template), group in sorted(groups.items()):
        job = create_job(
            session,
            company_id=company_id,
            job_type=OFFLOADABLE_EVENTS[template],
            recipients=[_recipient(row) for row in group],
            source="iomad",
            chunk_size=chunk_sizes.get(company_id, 100),
            payload={"source": "iomad", "templatename": template,
                     "iomad_email_ids": [row["id"] for row in group]},
        )  # fmt: skip
        job_ids.append(job.id)
    return job_ids


def _recipient(row: dict[str, Any]) -> RecipientSpec:
    original = {k: v for k, v in row.items() if not k.startswith("user_")}
    data = {
        "subject": row["subject"],
        "body": row["body"],
        **{name: row.get(f"user_{name}") or "" for name in USER_FIELDS},
        "iomad_email": original,
    }
    return RecipientSpec(
        email=str(row.get("user_email") or ""),
        data=json.loads(json.dumps(data, default=str)),
        userid=row["userid"],
        source_ref=f"iomad_email:{row['id']}",
    )
