"""Email to designated managers about newly flagged at-risk learners, through the mailer.

Run after the daily risk scoring when RISK_NOTIFY_MANAGERS is on. Each company gets one email
job addressed to its IOMAD company managers (`company_users.managertype = 1`); a site without
IOMAD gets one job for its site admins. A flag is mailed about once: a risk score row needs
an email while it is flagged, its `notified_at` is older than its `flagged_at`, and no one
acknowledged it since it was flagged. Which learners a company's managers hear about is decided
by the same tenant scope as their dashboard, so a manager never reads another company's names.

Jobs are made with `common.mail.jobs.create_job` (together with the flags' marks) and handed
to the mailers with the one dispatch rule of `common.mail.queue`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, tuple_, update
from sqlalchemy.orm import Session

from common.access.capabilities import MANAGERTYPE_COMPANY_MANAGER
from common.analytics.risk_rules import stored_factors
from common.appdb import AppDB
from common.bus import Bus
from common.mail.jobs import create_job
from common.mail.queue import dispatch_async
from common.mail.recipients import RecipientSpec
from common.models.analytics import RiskAck, RiskScore
from common.models.base import utcnow
from common.models.mail import JOB_PENDING, CloudJob
from common.moodle import MoodleSource
from common.settings import Settings
from common.tenancy import TenantScope, visible_ids

log = logging.getLogger(__name__)

SOURCE = "risk"
# A manager digest is an ordinary bulk message; the mail model needs no job type of its own.
JOB_TYPE = "bulk"
NO_COMPANY = 0  # the company id of jobs on a site without IOMAD
KEY_BATCH = 500

SUBJECT = "{{count}} learner(s) newly at risk{{#company}} in {{company}}{{/company}}"
HTML = (
    "<p>Dear {{firstname}},</p>"
    "<p>These learners{{#company}} in {{company}}{{/company}} were newly flagged as at risk. "
    "Open <em>At-risk learners</em> in ManiReports to see why and to acknowledge them.</p>"
    "<table><thead><tr><th>Learner</th><th>Course</th><th>Score</th><th>Factors</th>"
    "<th>Last activity (UTC)</th></tr></thead><tbody>"
    "{{#learners}}<tr><td>{{name}}</td><td>{{course}}</td><td>{{score}}</td>"
    "<td>{{factors}}</td><td>{{lastactivity}}{{^lastactivity}}never{{/lastactivity}}</td>"
    "</tr>{{/learners}}</tbody></table>"
)
TEXT = (
    "Dear {{firstname}},\n\nThese learners{{#company}} in {{company}}{{/company}} were newly "
    "flagged as at risk:\n\n{{#learners}}- {{name}}, {{course}}: score {{score}} ({{factors}})\n"
    "{{/learners}}\nOpen At-risk learners in ManiReports to acknowledge them.\n"
)


# common.mail.jobs.create_job(session, *, company_id, job_type, recipients, source, ...)
CreateMailJob = Callable[..., CloudJob]


class FlagsTakenMeanwhile(RuntimeError):
    """Another run notified some of these flags first; this run's jobs are rolled back."""


@dataclass(frozen=True)
class PendingFlag:
    userid: int
    courseid: int
    score: int
    factors: list[dict[str, Any]]
    lastactivity: int | None


@dataclass(frozen=True)
class Manager:
    userid: int
    email: str
    firstname: str
    lastname: str


@dataclass(frozen=True)
class Digest:
    """What one company's managers are told."""

    company_id: int
    company_name: str
    managers: list[Manager]
    flags: list[PendingFlag]


def pending_flags(session: Session) -> list[PendingFlag]:
    """Flagged learners whose current flag has been neither mailed about nor acknowledged."""
    acked_since_flag = (
        select(RiskAck.id)
        .where(
            RiskAck.userid == RiskScore.userid,
            RiskAck.courseid == RiskScore.courseid,
            RiskAck.timecreated >= RiskScore.flagged_at,
        )
        .exists()
    )
    rows = session.execute(
        select(RiskScore.userid, RiskScore.courseid, RiskScore.score, RiskScore.factors,
               RiskScore.lastactivity)
        .where(_unnotified(), ~acked_since_flag)
        .order_by(RiskScore.score.desc(), RiskScore.userid, RiskScore.courseid)
    )  # fmt: skip
    return [PendingFlag(r.userid, r.courseid, r.score, stored_factors(r.factors), r.lastactivity)
            for r in rows]  # fmt: skip


def _unnotified() -> Any:
    return and_(
        RiskScore.flagged.is_(True),
        RiskScore.flagged_at.is_not(None),
        or_(RiskScore.notified_at.is_(None), RiskScore.notified_at < RiskScore.flagged_at),
    )


def _active_users(source: MoodleSource, user_ids: Iterable[int]) -> dict[int, Manager]:
    u = source.tables.user
    ids = sorted(set(user_ids))
    found: dict[int, Manager] = {}
    with source.engine.connect() as conn:
        for offset in range(0, len(ids), KEY_BATCH):
            query = select(u.c.id, u.c.email, u.c.firstname, u.c.lastname).where(
                u.c.id.in_(ids[offset : offset + KEY_BATCH]),
                u.c.deleted == 0,
                u.c.suspended == 0,
                u.c.email != "",
            )
            for r in conn.execute(query):
                found[int(r.id)] = Manager(int(r.id), str(r.email), str(r.firstname),
                                           str(r.lastname))  # fmt: skip
    return found


def _company_managers(source: MoodleSource) -> dict[int, list[int]]:
    cu = source.tables.company_users
    query = (
        select(cu.c.companyid, cu.c.userid)
        .where(cu.c.managertype == MANAGERTYPE_COMPANY_MANAGER, cu.c.suspended == 0)
        .order_by(cu.c.companyid, cu.c.userid)
    )
    managers: dict[int, list[int]] = {}
    with source.engine.connect() as conn:
        for company, user in conn.execute(query):
            managers.setdefault(int(company), []).append(int(user))
    return managers


def _in_scope(
    source: MoodleSource, scope: TenantScope, flags: list[PendingFlag]
) -> list[PendingFlag]:
    """The flags a viewer with `scope` would see on the at-risk dashboard."""
    visible = visible_ids(scope, source)
    return [
        f for f in flags
        if (visible.users is None or f.userid in visible.users)
        and (visible.courses is None or f.courseid in visible.courses)
    ]  # fmt: skip


def build_digests(source: MoodleSource, flags: list[PendingFlag]) -> list[Digest]:
    """One digest per company with managers and in-scope flags (one site-wide without IOMAD)."""
    if not flags:
        return []
    if not source.features().has_iomad:
        admins = _active_users(source, source.site_admin_ids())
        return [Digest(NO_COMPANY, "", list(admins.values()), flags)] if admins else []
    by_company = _company_managers(source)
    people = _active_users(source, {u for users in by_company.values() for u in users})
    company = source.tables.company
    with source.engine.connect() as conn:
        names = {
            int(r.id): str(r.name)
            for r in conn.execute(select(company.c.id, company.c.name)
                                  .where(company.c.id.in_(sorted(by_company))))
        }  # fmt: skip
    digests = []
    for company_id, user_ids in sorted(by_company.items()):
        managers = [people[u] for u in user_ids if u in people]
        if not managers:
            continue
        mine = _in_scope(source, TenantScope(company_ids=(company_id,)), flags)
        if mine:
            digests.append(Digest(company_id, names.get(company_id, ""), managers, mine))
    return digests


def _learner_rows(source: MoodleSource, flags: list[PendingFlag]) -> list[dict[str, Any]]:
    t = source.tables
    user_ids = sorted({f.userid for f in flags})
    course_ids = sorted({f.courseid for f in flags})
    names: dict[int, str] = {}
    courses: dict[int, str] = {}
    with source.engine.connect() as conn:
        for offset in range(0, len(user_ids), KEY_BATCH):
            chunk = user_ids[offset : offset + KEY_BATCH]
            for r in conn.execute(select(t.user.c.id, t.user.c.firstname, t.user.c.lastname)
                                  .where(t.user.c.id.in_(chunk))):  # fmt: skip
                names[int(r.id)] = f"{r.firstname} {r.lastname}"
        for offset in range(0, len(course_ids), KEY_BATCH):
            chunk = course_ids[offset : offset + KEY_BATCH]
            for course in conn.execute(select(t.course.c.id, t.course.c.fullname)
                                       .where(t.course.c.id.in_(chunk))):  # fmt: skip
                courses[int(course.id)] = str(course.fullname)
    return [
        {
            "userid": f.userid,
            "courseid": f.courseid,
            "name": names.get(f.userid, f"user {f.userid}"),
            "course": courses.get(f.courseid, f"course {f.courseid}"),
            "score": f.score,
            "factors": ", ".join(str(x["label"]) for x in f.factors),
            "lastactivity": datetime.fromtimestamp(f.lastactivity, UTC).strftime("%Y-%m-%d")
            if f.lastactivity
            else "",
        }
        for f in flags
    ]


def _mark_notified(session: Session, flags: set[tuple[int, int]]) -> None:
    """Claim the flags for this run; a concurrent run that got there first rolls this back."""
    keys = sorted(flags)
    now = utcnow()
    claimed = 0
    key = tuple_(RiskScore.userid, RiskScore.courseid)
    for offset in range(0, len(keys), KEY_BATCH):
        result = session.execute(
            update(RiskScore)
            .where(key.in_(keys[offset : offset + KEY_BATCH]), _unnotified())
            .values(notified_at=now)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        claimed += result.rowcount  # type: ignore[attr-defined]
    if claimed != len(keys):
        raise FlagsTakenMeanwhile(f"{len(keys) - claimed} flag(s) were notified meanwhile")


def create_risk_jobs(
    appdb: AppDB, source: MoodleSource, create_job: CreateMailJob = create_job
) -> list[int]:
    """Create one email job per company for its newly flagged learners; the job ids.

    Jobs and the `notified_at` marks are written in one transaction: either the managers will
    be mailed and the flags are marked, or neither. (``create_job`` is replaced in tests, to
    act out a concurrent run.)
    """
    with appdb.transaction() as session:
        flags = pending_flags(session)
    digests = build_digests(source, flags)
    if not digests:
        return []
    rows = {(r["userid"], r["courseid"]): r for r in _learner_rows(source, flags)}
    run = uuid.uuid4().hex[:16]  # tells this run's recipients apart in `source_ref` (unique)
    job_ids: list[int] = []
    try:
        with appdb.transaction() as session:
            for digest in digests:
                learners = [rows[(f.userid, f.courseid)] for f in digest.flags]
                recipients = [
                    RecipientSpec(
                        email=m.email,
                        userid=m.userid,
                        source_ref=f"risk:{run}:{digest.company_id}:{m.userid}",
                        data={
                            "firstname": m.firstname,
                            "lastname": m.lastname,
                            "company": digest.company_name,
                            "count": len(learners),
                            "learners": learners,
                        },  # fmt: skip
                    )
                    for m in digest.managers
                ]
                job = create_job(session, company_id=digest.company_id, job_type=JOB_TYPE,
                                 recipients=recipients, source=SOURCE, subject=SUBJECT,
                                 html=HTML, text=TEXT,
                                 payload={"source": SOURCE, "learners": len(learners)})  # fmt: skip
                job_ids.append(job.id)
            _mark_notified(session, {(f.userid, f.courseid) for d in digests for f in d.flags})
    except FlagsTakenMeanwhile as exc:
        log.warning("risk notifications: %s; leaving them to that run", exc)
        return []
    log.info("risk notifications: %d job(s) for %d flag(s)", len(job_ids), len(flags))
    return job_ids


def pending_risk_jobs(session: Session) -> list[int]:
    query = select(CloudJob.id).where(CloudJob.source == SOURCE, CloudJob.status == JOB_PENDING)
    return list(session.scalars(query.order_by(CloudJob.id)))


async def dispatch_risk_jobs(bus: Bus, appdb: AppDB) -> int:
    """Ask the mailers to send every risk job still pending, including those a failed earlier
    publish left behind; the one dispatch message id lets JetStream drop a second ask."""

    def find() -> list[int]:
        with appdb.transaction() as session:
            return pending_risk_jobs(session)

    job_ids = await asyncio.to_thread(find)
    for job_id in job_ids:
        await dispatch_async(bus.publish, job_id)
    return len(job_ids)


async def notify_after_scoring(
    bus: Bus,
    appdb: AppDB,
    source: MoodleSource,
    settings: Settings,
    create_job: CreateMailJob = create_job,
) -> list[int]:
    """The aggregator's step after `risk_scores`: create the jobs, then hand them to the mailers."""
    if not settings.risk_notify_managers:
        return []
    created = await asyncio.to_thread(create_risk_jobs, appdb, source, create_job)
    await dispatch_risk_jobs(bus, appdb)
    return created
