"""Parked people, the read side (SQLite, MariaDB): the pending ones paged with their total and
found by source or id; which courses have a parked person mapped now (resolved people, other
sources and unmapped people are not); the sync command an import asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.appdb import AppDB
from common.identity.parked import pending, ready, ready_courses, record_sync, retry_command
from common.models.identity import IdentityMapping, ParkedIdentity

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def park(appdb: AppDB, *people: tuple[str, str, int], at: datetime = T0,
         synced: tuple[int, ...] = ()) -> None:  # fmt: skip
    """A sync of ``synced`` and the people's courses that parked ``people``."""
    with appdb.transaction() as session:
        record_sync(session, {*synced, *(course for _, _, course in people)},
                    [{"source": s, "user_id": u, "course_id": c,
                      "error": f"no Google email is mapped for {s} user {u}"}
                     for s, u, c in people], at)  # fmt: skip


def mapped(appdb: AppDB, *people: tuple[str, str]) -> None:
    with appdb.transaction() as session:
        session.add_all(IdentityMapping(source=s, lms_user_id=u, google_email=f"{s}{u}@x.example")
                        for s, u in people)  # fmt: skip


def test_pending_pages_the_waiting_people_longest_waiting_first(appdb: AppDB) -> None:
    for n in range(5):
        park(appdb, ("moodle", str(n), 40 + n), at=T0 + timedelta(minutes=n))
    park(appdb, ("canvas", "77", 50), at=T0 + timedelta(hours=1))
    with appdb.sessions() as session:
        first = pending(session, limit=2)
        third = pending(session, limit=2, offset=4)
        assert first.total == third.total == 6
        assert [p.lms_user_id for p in first.people] == ["0", "1"]
        assert [p.lms_user_id for p in third.people] == ["4", "77"]
        one = first.people[0]
        assert (one.source, one.course_id, one.attempts) == ("moodle", 40, 1)
        assert one.error == "no Google email is mapped for moodle user 0"
        assert one.first_parked_at == one.last_tried_at == T0
        by_id = pending(session, search=" 3 ", limit=10)
        assert (by_id.total, [p.course_id for p in by_id.people]) == (1, [43])
        by_source = pending(session, search="CANVAS", limit=10)
        assert [p.lms_user_id for p in by_source.people] == ["77"]
        assert pending(session, search="nobody", limit=10).total == 0
        assert pending(session, limit=0).people == []


def test_resolved_people_are_not_pending(appdb: AppDB) -> None:
    park(appdb, ("moodle", "1", 40), ("moodle", "2", 40))
    park(appdb, ("moodle", "2", 40))  # the next sync of course 40 placed user 1
    with appdb.sessions() as session:
        page = pending(session, limit=10)
        assert [(p.lms_user_id, p.attempts) for p in page.people] == [("2", 2)]


def test_ready_courses_are_those_of_pending_people_mapped_now(appdb: AppDB) -> None:
    park(appdb, ("moodle", "1", 40), ("moodle", "1", 41), ("moodle", "2", 42),
         ("moodle", "3", 43), ("moodle", "4", 44))  # fmt: skip
    # Courses 43 and 44 synced since: user 3 placed in 43 and parked in 44, user 4 placed.
    park(appdb, ("moodle", "3", 44), synced=(43,))
    with appdb.sessions() as session:
        assert ready_courses(session) == []
        assert ready(session).people == 0
        assert not any(p.mapped for p in pending(session, limit=10).people)
    # User 1 (two courses) and 3 mapped; a canvas user 2 is someone else; 3 is resolved in 43.
    mapped(appdb, ("moodle", "1"), ("canvas", "2"), ("moodle", "3"))
    with appdb.sessions() as session:
        assert ready_courses(session) == [40, 41, 44]
        found = ready(session)
        assert (found.courses, found.people) == ([40, 41, 44], 2)
        waiting = pending(session, limit=10).people
        assert [(p.lms_user_id, p.course_id) for p in waiting if p.mapped] == [
            ("1", 40), ("1", 41), ("3", 44)]  # fmt: skip
    park(appdb, ("moodle", "2", 40), ("moodle", "2", 41), ("moodle", "3", 44))
    with appdb.sessions() as session:  # 40 and 41 synced: user 1 placed, user 2 is not mapped
        assert ready_courses(session) == [44]
        rows = session.query(ParkedIdentity).filter(ParkedIdentity.lms_user_id == "1").all()
        assert all(r.resolved_at is not None for r in rows)


def test_the_retry_command_is_the_classroom_sync_of_the_courses_named_by_batch() -> None:
    command = retry_command("b-1", [44, 40, 44])
    assert command.subject == "mr.cmd.sync.classroom"
    assert command.payload == {"task": "classroom_sync", "trigger": "import", "courses": [40, 44]}
    assert command.msg_id == "identity:retry:b-1"
    assert retry_command("b-2", [40]).msg_id != command.msg_id
