"""Parked people: enrolled in a synced course, but with no Google email mapped, so a roster sync
could not place them (`lms_identity_parked`). They stay visible on the identity mapping page
until a sync finds their mapping; importing a mapping that maps any of them triggers that sync.

`record_sync` is the roster sync's side: after syncing some courses, the people it parked in
them are pending (attempts counted, the latest error kept) and everyone else once parked in
those courses is resolved — mapped since, or no longer enrolled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.models.identity import ParkedIdentity


def record_sync(
    session: Session,
    course_ids: Iterable[int],
    parked: Iterable[Mapping[str, Any]],
    now: datetime,
) -> None:
    """``parked``: the sync's {source, user_id, course_id, error} for the courses in
    ``course_ids``."""
    courses = sorted(set(course_ids))
    if not courses:
        return
    still = {(str(p["source"]), str(p["user_id"]), int(p["course_id"])): p for p in parked}
    existing = {
        (row.source, row.lms_user_id, row.course_id): row
        for row in session.scalars(
            select(ParkedIdentity).where(ParkedIdentity.course_id.in_(courses))
        )
    }
    for key, person in still.items():
        row = existing.get(key)
        if row is None:
            source, user_id, course_id = key
            session.add(
                ParkedIdentity(
                    source=source, lms_user_id=user_id, course_id=course_id,
                    error=str(person.get("error") or ""), attempts=1,
                    first_parked_at=now, last_tried_at=now,
                )
            )  # fmt: skip
        elif row.resolved_at is not None:  # parked again (their mapping was deleted since)
            row.resolved_at, row.attempts, row.first_parked_at = None, 1, now
            row.error, row.last_tried_at = str(person.get("error") or ""), now
        else:
            row.attempts += 1
            row.error = str(person.get("error") or row.error)
            row.last_tried_at = now
    gone = [r.id for key, r in existing.items() if key not in still and r.resolved_at is None]
    if gone:
        session.execute(
            update(ParkedIdentity).where(ParkedIdentity.id.in_(gone)).values(resolved_at=now)
        )
