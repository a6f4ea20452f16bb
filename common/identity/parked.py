"""Parked people: enrolled in a synced course, but with no Google email mapped, so a roster sync
could not place them (`lms_identity_parked`). They stay visible on the identity mapping page
until a sync finds their mapping; importing a mapping that maps any of them triggers that sync.

`record_sync` is the roster sync's side: after syncing some courses, the people it parked in
them are pending (attempts counted, the latest error kept) and everyone else once parked in
those courses is resolved — mapped since, or no longer enrolled.

The read side: `pending` pages the people still parked (the admin page), `ready` says which of
them have a mapping now and in which courses (an applied import asks for a sync of exactly
those courses), and `retry_command` is that request on the bus — the periodic
`classroom_sync` task's command, limited to the courses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from common.bus import command_subject
from common.models.identity import IdentityMapping, ParkedIdentity

SYNC_TASK = "classroom_sync"  # the periodic task (common/schedules/tasks.py) a retry runs
SYNC_SUBJECT = command_subject("sync", "classroom")


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


@dataclass(frozen=True)
class ParkedPerson:
    source: str
    lms_user_id: str
    course_id: int
    error: str
    attempts: int
    first_parked_at: datetime
    last_tried_at: datetime
    mapped: bool  # mapped since they were parked: the next sync of the course places them


@dataclass(frozen=True)
class ParkedPage:
    people: list[ParkedPerson]
    total: int  # every pending row matching the search, not only this page


def pending(session: Session, *, search: str | None = None, limit: int,
            offset: int = 0) -> ParkedPage:  # fmt: skip
    """The people still parked, longest waiting first. ``search``: a source or an LMS user id
    (exact; a source in any case)."""
    p, m = ParkedIdentity, IdentityMapping
    where: list[ColumnElement[bool]] = [p.resolved_at.is_(None)]
    term = (search or "").strip()
    if term:
        where.append(or_(p.source == term.lower(), p.lms_user_id == term))
    total = session.scalar(select(func.count()).select_from(p).where(*where)) or 0
    rows = session.execute(
        select(p.source, p.lms_user_id, p.course_id, p.error, p.attempts, p.first_parked_at,
               p.last_tried_at,
               exists().where(m.source == p.source, m.lms_user_id == p.lms_user_id))
        .where(*where).order_by(p.first_parked_at, p.id).limit(limit).offset(offset)
    ).all()  # fmt: skip
    return ParkedPage([ParkedPerson(*row[:-1], bool(row[-1])) for row in rows], int(total))


def _mapped_now() -> Any:
    """The pending parked rows whose (source, LMS user id) has a mapping now."""
    p, m = ParkedIdentity, IdentityMapping
    return (
        select(p.course_id, p.source, p.lms_user_id)
        .join(m, and_(m.source == p.source, m.lms_user_id == p.lms_user_id))
        .where(p.resolved_at.is_(None))
    )


def ready_courses(session: Session) -> list[int]:
    """The Moodle courses with a parked person who is mapped now: a sync of them places them."""
    mapped = _mapped_now().subquery()
    return [int(c) for c in session.scalars(
        select(mapped.c.course_id).distinct().order_by(mapped.c.course_id))]  # fmt: skip


@dataclass(frozen=True)
class Ready:
    courses: list[int]
    people: int  # parked people (source + id, once however many courses) mapped now


def ready(session: Session) -> Ready:
    mapped = _mapped_now().subquery()
    people = session.scalar(
        select(func.count()).select_from(
            select(mapped.c.source, mapped.c.lms_user_id).distinct().subquery()
        )
    )  # fmt: skip
    return Ready(ready_courses(session), int(people or 0))


@dataclass(frozen=True)
class RetryCommand:
    subject: str
    payload: dict[str, Any]
    msg_id: str


def retry_command(batch_id: str, courses: Iterable[int]) -> RetryCommand:
    """The sync of ``courses`` after ``batch_id`` was applied. The message id names the batch,
    so the bus drops a second publish for the same batch (a double click, a retried CLI)."""
    payload = {"task": SYNC_TASK, "trigger": "import", "courses": sorted(set(courses))}
    return RetryCommand(SYNC_SUBJECT, payload, f"identity:retry:{batch_id}")
