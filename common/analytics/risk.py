"""At-risk learners: scoring every active enrolment against the rules (`risk_rules`), the
flagged list dashboards show, and managers' acknowledgements.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, delete, func, null, or_, select, tuple_
from sqlalchemy.orm import Session

from common.analytics.risk_rules import RuleSet, effective_rules, stored_factors
from common.analytics.state import read_mark, write_mark
from common.analytics.tables import TablePage, TableSpec
from common.analytics.upsert import upsert
from common.appdb import AppDB
from common.audit import record_audit
from common.errors import FieldError
from common.models.analytics import Engagement, RiskAck, RiskScore
from common.models.base import table_of, utcnow
from common.moodle import MoodleSource
from common.reports.base import Column
from common.reports.rows import PageRequest, SqlRows
from common.tenancy import NotFound, TenantScope, load_scoped, scoped

DAY_S = 86_400
MAX_NOTE = 2000
NEVER = None  # a figure of days since something that never happened (no login, no visit)
SCORED_MARK = "risk_scores.computed_at"
# The columns a run rewrites in a row whose figures changed (by their digest).
FIGURE_NAMES = ("score", "flagged", "factors", "lastactivity", "flagged_at", "digest")
KEY_BATCH = 400


def _learner_figures(source: MoodleSource, now: int) -> list[Any]:
    """Every active student enrolment outside the site course, with what scoring it reads
    from Moodle: (userid, courseid, last login, last course access, activities completed,
    the learner's company). One query, so each enrolment comes back as one row."""
    t = source.tables
    ue, e, u = t.user_enrolments, t.enrol, t.user
    ra, ctx, role = t.role_assignments, t.context, t.role
    la, cm, cmc = t.user_lastaccess, t.course_modules, t.course_modules_completion
    cu = t.company_users
    students = (
        select(ra.c.userid, ctx.c.instanceid.label("courseid"))
        .join(ctx, and_(ctx.c.id == ra.c.contextid, ctx.c.contextlevel == 50))
        .join(role, and_(role.c.id == ra.c.roleid, role.c.archetype == "student"))
        .subquery()
    )
    learners = (
        select(ue.c.userid, e.c.courseid, u.c.lastaccess)
        .join(e, e.c.id == ue.c.enrolid)
        .join(u, u.c.id == ue.c.userid)
        .join(
            students, and_(students.c.userid == ue.c.userid, students.c.courseid == e.c.courseid)
        )  # fmt: skip
        .where(
            e.c.status == 0,
            e.c.courseid != 1,
            ue.c.status == 0,
            ue.c.timestart <= now,
            or_(ue.c.timeend == 0, ue.c.timeend > now),
            u.c.deleted == 0,
            u.c.suspended == 0,
        )  # fmt: skip
        .distinct()
        .subquery()
    )
    completed = (
        select(cmc.c.userid, cm.c.course.label("courseid"), func.count().label("done"))
        .join(cm, cm.c.id == cmc.c.coursemoduleid)
        .where(*_tracked(source), cmc.c.completionstate.in_((1, 2)))
        .group_by(cmc.c.userid, cm.c.course)
        .subquery()
    )
    company: Any = null()
    query = (
        select(learners.c.userid, learners.c.courseid, learners.c.lastaccess,
               la.c.timeaccess, completed.c.done)
        .outerjoin(la, and_(la.c.userid == learners.c.userid, la.c.courseid == learners.c.courseid))
        .outerjoin(completed, and_(completed.c.userid == learners.c.userid,
                                   completed.c.courseid == learners.c.courseid))
    )  # fmt: skip
    if source.features().has_iomad:
        first = select(cu.c.userid, func.min(cu.c.companyid).label("companyid")).group_by(
            cu.c.userid
        ).subquery()  # fmt: skip
        query = query.outerjoin(first, first.c.userid == learners.c.userid)
        company = first.c.companyid
    with source.engine.connect() as conn:
        return list(conn.execute(query.add_columns(company.label("companyid"))))


def _tracked(source: MoodleSource) -> tuple[Any, ...]:
    """The activities completion counts: tracked and not being deleted."""
    cm = source.tables.course_modules
    return (cm.c.completion > 0, cm.c.deletioninprogress == 0)


def _modules(source: MoodleSource) -> dict[int, int]:
    """Activities with completion tracked, per course."""
    cm = source.tables.course_modules
    query = select(cm.c.course, func.count()).where(*_tracked(source)).group_by(cm.c.course)
    with source.engine.connect() as conn:
        return {int(c): int(n) for c, n in conn.execute(query)}


@dataclass(frozen=True)
class MoodleFigures:
    """What scoring reads from Moodle: every active enrolment with its figures
    (`_learner_figures`) and the tracked activities per course."""

    learners: list[Any]
    modules: dict[int, int]


def read_moodle_figures(source: MoodleSource, now: int) -> MoodleFigures:
    """Scoring's Moodle reads, which wait on no other step: the aggregator runs them beside
    the log estimate."""
    return MoodleFigures(_learner_figures(source, now), _modules(source))


def stored_scores(appdb: AppDB) -> dict[tuple[int, int], Any]:
    """Each stored score's digest and flag, by (user, course): what a run compares with. Only
    scoring writes these rows, so the aggregator reads them while engagement is refreshed."""
    columns = (RiskScore.userid, RiskScore.courseid, RiskScore.digest, RiskScore.flagged,
               RiskScore.flagged_at)  # fmt: skip
    with appdb.transaction() as session:
        return {(r.userid, r.courseid): r for r in session.execute(select(*columns))}


def compute_risk_scores(
    appdb: AppDB,
    source: MoodleSource,
    *,
    now: int,
    flag_score: int,
    moodle: MoodleFigures | None = None,
    stored: dict[tuple[int, int], Any] | None = None,
) -> list[tuple[int, int]]:
    """Score every active learner in every course; returns the newly flagged (user, course).

    A score depends on the clock (days since a login), so every learner is scored each run;
    only the rows whose figures changed are written (each row keeps a digest of its figures,
    so a run compares digests rather than reading every row's factors back), and the rows of
    learners no longer enrolled are deleted: a run writes what changed, not the table."""
    moodle = moodle or read_moodle_figures(source, now)
    learners, modules = moodle.learners, moodle.modules
    stored = stored_scores(appdb) if stored is None else stored
    with appdb.transaction() as session:
        rules = {company: RuleSet(r) for company, r in effective_rules(session).items()}
        engagement = {
            (r.userid, r.courseid): (r.seconds_7, r.active_days_30)
            for r in session.execute(select(Engagement.userid, Engagement.courseid,
                                            Engagement.seconds_7, Engagement.active_days_30))
        }  # fmt: skip
    computed = utcnow()
    rows, newly, enrolled = [], [], set()
    for user, course, last_login, course_access, done, company in learners:
        key = (user, course)
        enrolled.add(key)
        last_login, course_access = int(last_login or 0), int(course_access or 0)
        count = modules.get(course, 0)
        seconds_7, active_days_30 = engagement.get(key, (0, 0))
        values: dict[str, float | None] = {
            "min_time_7d_minutes": seconds_7 / 60,
            "max_days_since_login": (now - last_login) / DAY_S if last_login else NEVER,
            "min_completion_pct": 100 * int(done or 0) / count if count else 100,
            "min_active_days_30d": active_days_30,
            "max_days_since_course_access": (now - course_access) / DAY_S
            if course_access
            else NEVER,
        }
        value, factors = rules.get(company, rules[None]).score(values)
        flagged = value >= flag_score
        before = stored.get(key)
        # Since when the flag stands: kept from a row flagged before this run.
        flagged_before = before.flagged_at if before is not None and before.flagged else None
        if flagged and flagged_before is None:
            newly.append(key)
        last = max(last_login, course_access) or None
        encoded = json.dumps(factors, separators=(",", ":"))
        digest = figures_digest(value, flagged, encoded, last)
        if before is None or before.digest != digest:
            since = (flagged_before or computed) if flagged else None
            rows.append({"userid": user, "courseid": course, "computed_at": computed,
                         "score": value, "flagged": flagged, "factors": encoded,
                         "lastactivity": last, "digest": digest, "flagged_at": since})  # fmt: skip
    gone = sorted(set(stored) - enrolled)
    with appdb.transaction() as session:
        upsert(session, table_of(RiskScore), rows, key=("userid", "courseid"),
               update=(*FIGURE_NAMES, "computed_at"))  # fmt: skip
        for offset in range(0, len(gone), KEY_BATCH):
            batch = gone[offset : offset + KEY_BATCH]
            session.execute(
                delete(RiskScore).where(tuple_(RiskScore.userid, RiskScore.courseid).in_(batch))
            )
        write_mark(session, SCORED_MARK, now)
    return newly


def figures_digest(score: int, flagged: bool, factors: str, lastactivity: int | None) -> int:
    """A stored row's figures in 63 bits (a flag's start is not in it: it is kept while the
    flag stands, so only whether there is one changes, and that is the flag)."""
    text = f"{score}|{int(flagged)}|{lastactivity}|{factors}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


def last_scored(session: Session) -> int | None:
    """When the scores were last computed (Unix time), None before the first run: until
    then no page may say "0 flagged"."""
    return read_mark(session, SCORED_MARK) or None


@dataclass(frozen=True)
class FlaggedLearner:
    userid: int
    courseid: int
    score: int
    factors: list[dict[str, Any]]
    lastactivity: int | None
    seconds_30: int
    xapi_statements_30: int | None
    video_seconds_30: int | None
    acked_at: Any
    acked_note: str | None


AT_RISK_TABLE = TableSpec(
    columns=(
        Column("learner", "Learner", sortable=False),
        Column("course", "Course", sortable=False),
        Column("score", "Score", "int"),
        Column("factors", "Factors", sortable=False),
        Column("seconds_30", "Time, 30 days", "duration"),
        Column("xapi_statements_30", "xAPI statements, 30 days", "int"),
        Column("video_seconds_30", "Video, 30 days", "duration"),
        Column("lastactivity", "Last activity", "datetime"),
        Column("acknowledged", "Acknowledged", sortable=False),
    ),
    default_sort="score",
    default_direction="desc",
    row_key=("userid", "courseid"),
)

# What "flagged" means, for the at-risk list and for every count of it: one condition.
IS_FLAGGED = RiskScore.flagged.is_(True)


def flagged_query(scope: TenantScope, source: MoodleSource) -> Select:  # type: ignore[type-arg]
    """The flagged (learner, course) rows ``scope`` may see, with their 30-day engagement."""
    e = Engagement
    query = (
        select(RiskScore.userid, RiskScore.courseid, RiskScore.score, RiskScore.factors,
               RiskScore.lastactivity, func.coalesce(e.seconds_30, 0).label("seconds_30"),
               e.xapi_statements_30, e.video_seconds_30)
        .outerjoin(e, and_(e.userid == RiskScore.userid, e.courseid == RiskScore.courseid))
        .where(IS_FLAGGED)
    )  # fmt: skip
    return scoped(query, scope, source)


def flagged_by_course(session: Session, scope: TenantScope, source: MoodleSource) -> dict[int, int]:
    """How many learners are flagged per course, over exactly the rows `flagged_page` lists
    for the same scope (the overview's counts add up to the at-risk list's total)."""
    query = select(RiskScore.courseid, func.count()).where(IS_FLAGGED).group_by(RiskScore.courseid)
    return {int(c): int(n) for c, n in session.execute(scoped(query, scope, source))}


def flagged_page(
    appdb: AppDB, scope: TenantScope, source: MoodleSource, request: PageRequest
) -> TablePage:
    """One page of the flagged learners in scope (highest score first by default), each with
    their latest acknowledgement."""
    found, total = SqlRows(appdb.engine, flagged_query(scope, source)).page(
        request, AT_RISK_TABLE.row_key
    )
    keys = [(r["userid"], r["courseid"]) for r in found]
    acks: dict[tuple[int, int], tuple[Any, str]] = {}
    if keys:
        with appdb.transaction() as session:
            for ack in session.execute(
                select(RiskAck.userid, RiskAck.courseid, RiskAck.timecreated, RiskAck.note)
                .where(tuple_(RiskAck.userid, RiskAck.courseid).in_(keys))
                .order_by(RiskAck.timecreated, RiskAck.id)
            ):
                acks[(ack.userid, ack.courseid)] = (ack.timecreated, ack.note)
    rows = [
        FlaggedLearner(r["userid"], r["courseid"], r["score"], stored_factors(r["factors"]),
                       r["lastactivity"], int(r["seconds_30"] or 0), r["xapi_statements_30"],
                       r["video_seconds_30"], *acks.get((r["userid"], r["courseid"]), (None, None)))
        for r in found
    ]  # fmt: skip
    return TablePage(AT_RISK_TABLE, rows, total, request)


def acknowledge(
    session: Session, scope: TenantScope, source: MoodleSource, *, actor_id: int, userid: int,
    courseid: int, note: str, ip: str | None = None,
) -> RiskAck:  # fmt: skip
    """A manager's acknowledgement with a note, audited in the same transaction. A learner
    outside ``scope`` raises TenantViolation."""
    note = (note or "").strip()
    if not note:
        raise FieldError("note", "say what you did or will do")
    if len(note) > MAX_NOTE:
        raise FieldError("note", f"at most {MAX_NOTE} characters")
    flagged = select(RiskScore.score).where(
        RiskScore.userid == userid, RiskScore.courseid == courseid, RiskScore.flagged.is_(True)
    )
    try:
        current = load_scoped(session.scalar, flagged, scope, source,
                              what=f"flagged learner {userid} in course {courseid}")  # fmt: skip
    except NotFound:
        raise FieldError("learner", "this learner is not flagged in this course") from None
    company_id = scope.company_id
    ack = RiskAck(userid=userid, courseid=courseid, score=current, ackedby=actor_id, note=note)
    session.add(ack)
    record_audit(session, actor_id=actor_id, action="risk_acknowledged", object_type="risk_score",
                 object_id=f"{userid}:{courseid}", company_id=company_id, ip=ip,
                 details={"score": current, "note": note})  # fmt: skip
    return ack
