"""Who receives which file of a scheduled run.

Every Moodle user on a schedule receives what their own scope allows, worked out now (not when
the schedule was saved): someone who left the company, was suspended or lost the capability
receives nothing. Plain addresses receive the author's scope, so the author can send no more
than they may see themselves. Recipients whose scopes are the same share one rendered file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from common.access.viewer import Viewer, load_viewer
from common.appdb import AppDB
from common.models.schedules import ReportSchedule
from common.moodle import MoodleSource
from common.reports import Report
from common.schedules.store import may_run, recipients_of
from common.tenancy import TenantScope, TenantViolation, scope_for


@dataclass(frozen=True)
class Addressee:
    email: str
    userid: int | None = None
    firstname: str = ""
    lastname: str = ""


@dataclass
class Audience:
    """One rendering: the scope it is rendered in, whose run it is recorded as, and who gets it."""

    scope: TenantScope
    viewer_id: int
    people: list[Addressee] = field(default_factory=list)


@dataclass
class Audiences:
    groups: list[Audience]
    left_out: list[str]  # why someone on the schedule receives nothing this time

    @property
    def count(self) -> int:
        return sum(len(g.people) for g in self.groups)


def _scope(viewer: Viewer | None, report: Report, source: MoodleSource,
           company_id: int | None) -> TenantScope | None:  # fmt: skip
    if viewer is None or not may_run(report, viewer, source):
        return None
    try:
        return scope_for(viewer, company_id)
    except TenantViolation:
        return None


def _moodle_people(source: MoodleSource, ids: Sequence[int]) -> dict[int, Addressee]:
    if not ids:
        return {}
    u = source.tables.user
    query = select(u.c.id, u.c.email, u.c.firstname, u.c.lastname).where(
        u.c.id.in_(list(ids)), u.c.deleted == 0, u.c.suspended == 0
    )
    with source.engine.connect() as conn:
        return {int(r.id): Addressee(str(r.email), int(r.id), str(r.firstname), str(r.lastname))
                for r in conn.execute(query) if r.email}  # fmt: skip


def audiences_of(
    appdb: AppDB, source: MoodleSource, row: ReportSchedule, report: Report
) -> Audiences:
    user_ids, emails = recipients_of(row)
    groups: dict[TenantScope, Audience] = {}
    left_out: list[str] = []

    def add(scope: TenantScope, viewer_id: int, person: Addressee) -> None:
        groups.setdefault(scope, Audience(scope, viewer_id)).people.append(person)

    people = _moodle_people(source, user_ids)
    with appdb.transaction() as session:
        for user_id in user_ids:
            person = people.get(user_id)
            viewer = load_viewer(source, session, user_id) if person is not None else None
            scope = _scope(viewer, report, source, row.companyid)
            if person is None or scope is None:
                left_out.append(f"user {user_id} may no longer receive this report")
                continue
            add(scope, user_id, person)
        if emails:
            author = load_viewer(source, session, row.createdby)
            scope = _scope(author, report, source, row.companyid)
            if scope is None:
                left_out.append(f"{len(emails)} address(es): the schedule's author may no "
                                "longer run this report")  # fmt: skip
            else:
                for email in emails:
                    add(scope, row.createdby, Addressee(email))
    return Audiences(list(groups.values()), left_out)
