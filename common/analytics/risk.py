"""At-risk learners: admin-set rules, each adding points to a 0-100 score, factors kept.

A rule is a figure, a threshold and a weight. A learner breaking a rule gets between half and
all of its weight, more the further past the threshold; the score is the points over the total
weight of the enabled rules. Rules are site-wide (companyid NULL) or a company's own, which
replaces the site rule of the same kind for that company's learners.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, tuple_
from sqlalchemy.orm import Session

from common.access.capabilities import MANAGERTYPE_COMPANY_MANAGER
from common.analytics.upsert import table_of, upsert
from common.appdb import AppDB
from common.audit import record_audit
from common.models.analytics import Engagement, RiskAck, RiskRule, RiskScore
from common.models.base import utcnow
from common.moodle import MoodleSource

DAY_S = 86_400
MAX_NOTE = 2000


@dataclass(frozen=True)
class RuleKind:
    name: str
    label: str
    direction: str  # "min": at risk below the threshold; "max": above it
    threshold: float
    weight: int


RULE_KINDS: dict[str, RuleKind] = {
    kind.name: kind
    for kind in (
        RuleKind("min_time_7d_minutes", "Minutes in the course over 7 days", "min", 30, 20),
        RuleKind("max_days_since_login", "Days since the last login", "max", 7, 20),
        RuleKind("min_completion_pct", "Activities completed (%)", "min", 50, 25),
        RuleKind("min_active_days_30d", "Active days in the course over 30 days", "min", 3, 15),
        RuleKind(
            "max_days_since_course_access", "Days since the course was opened", "max", 14, 20
        ),  # fmt: skip
    )
}


class RiskInputError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Rule:
    kind: RuleKind
    threshold: float
    weight: int


def points(rule: Rule, value: float) -> float:
    """What breaking `rule` with `value` adds: 0, or from half to all of its weight."""
    limit = rule.threshold
    if rule.kind.direction == "min":
        if value >= limit:
            return 0.0
        severity = (limit - value) / limit if limit else 1.0
    else:
        if value <= limit:
            return 0.0
        severity = (value - limit) / limit if limit else 1.0
    return rule.weight * (0.5 + 0.5 * min(1.0, severity))


def score(rules: Iterable[Rule], values: Mapping[str, float]) -> tuple[int, list[dict[str, Any]]]:
    """(0-100 score, the factors that added points) for one learner in one course."""
    rules = [r for r in rules if r.weight > 0]
    total = sum(r.weight for r in rules)
    factors = []
    earned = 0.0
    for rule in rules:
        value = values[rule.kind.name]
        added = points(rule, value)
        if added:
            earned += added
            factors.append({"rule": rule.kind.name, "label": rule.kind.label,
                            "value": round(value, 1), "threshold": rule.threshold,
                            "points": round(100 * added / total, 1)})  # fmt: skip
    return (round(100 * earned / total) if total else 0), factors


def effective_rules(session: Session) -> dict[int | None, list[Rule]]:
    """Rules per company (None: site-wide), defaults filled in and company rules on top."""
    stored = session.scalars(select(RiskRule)).all()
    site = {name: Rule(kind, kind.threshold, kind.weight) for name, kind in RULE_KINDS.items()}
    for row in stored:
        if row.companyid is None and row.ruletype in RULE_KINDS:
            site[row.ruletype] = Rule(RULE_KINDS[row.ruletype], row.threshold,
                                      row.weight if row.enabled else 0)  # fmt: skip
    rules: dict[int | None, dict[str, Rule]] = {None: site}
    for row in stored:
        if row.companyid is not None and row.ruletype in RULE_KINDS:
            rules.setdefault(row.companyid, dict(site))[row.ruletype] = Rule(
                RULE_KINDS[row.ruletype], row.threshold, row.weight if row.enabled else 0
            )
    return {company: list(by_kind.values()) for company, by_kind in rules.items()}


class RiskRuleMissing(LookupError):
    """No stored rule of that kind for that company (it uses the site's or the default)."""


def _stored_rule(session: Session, company_id: int | None, ruletype: str) -> RiskRule | None:
    if ruletype not in RULE_KINDS:
        raise RiskInputError("ruletype", f"must be one of {', '.join(RULE_KINDS)}")
    owner = RiskRule.companyid.is_(None) if company_id is None else RiskRule.companyid == company_id
    return session.scalar(select(RiskRule).where(RiskRule.ruletype == ruletype, owner))


@dataclass(frozen=True)
class RuleSetting:
    """One rule kind as a company (None: the site) has it, and where its values come from."""

    kind: RuleKind
    threshold: float
    weight: int
    enabled: bool
    source: str  # "own": stored for this company or site; "site": inherited; "default"


def rule_settings(session: Session, company_id: int | None) -> list[RuleSetting]:
    """Every rule kind with the values that apply to `company_id` (None: site-wide)."""
    rows = session.scalars(select(RiskRule).where(
        RiskRule.companyid.is_(None) if company_id is None
        else or_(RiskRule.companyid.is_(None), RiskRule.companyid == company_id)
    )).all()  # fmt: skip
    own = {r.ruletype: r for r in rows if r.companyid == company_id}
    site = {r.ruletype: r for r in rows if r.companyid is None}
    settings = []
    for name, kind in RULE_KINDS.items():
        row, source = (own[name], "own") if name in own else (site.get(name), "site")
        if row is None:
            settings.append(RuleSetting(kind, kind.threshold, kind.weight, True, "default"))
        else:
            settings.append(RuleSetting(kind, row.threshold, row.weight, row.enabled, source))
    return settings


def save_rule(
    session: Session, *, actor_id: int, company_id: int | None, ruletype: str,
    threshold: float, weight: int, enabled: bool,
) -> None:  # fmt: skip
    """Create or change one rule, audited in the same transaction."""
    if ruletype not in RULE_KINDS:
        raise RiskInputError("ruletype", f"must be one of {', '.join(RULE_KINDS)}")
    if not 0 <= threshold <= 100_000:
        raise RiskInputError("threshold", "must be from 0 to 100000")
    if not 0 <= weight <= 100:
        raise RiskInputError("weight", "must be from 0 to 100")
    row = _stored_rule(session, company_id, ruletype)
    if row is None:
        row = RiskRule(companyid=company_id, ruletype=ruletype)
        session.add(row)
    row.threshold, row.weight, row.enabled, row.modifiedby = threshold, weight, enabled, actor_id
    details = {"threshold": threshold, "weight": weight, "enabled": enabled}
    record_audit(session, actor_id=actor_id, action="risk_rule_saved", object_type="risk_rule",
                 object_id=ruletype, company_id=company_id, details=details)  # fmt: skip


def is_company_manager(source: MoodleSource, user_id: int, company_id: int) -> bool:
    """Whether the user is a company manager (not a department manager or reporter) of the
    company: those are the people who set its rules and hear about its flagged learners."""
    cu = source.tables.company_users
    query = select(cu.c.id).where(
        cu.c.userid == user_id,
        cu.c.companyid == company_id,
        cu.c.managertype == MANAGERTYPE_COMPANY_MANAGER,
        cu.c.suspended == 0,
    )
    with source.engine.connect() as conn:
        return conn.scalar(query.limit(1)) is not None


def set_rule_enabled(
    session: Session, *, actor_id: int, company_id: int | None, ruletype: str, enabled: bool
) -> None:
    """Switch a rule on or off, keeping its threshold and weight; an inherited rule becomes
    the company's (or site's) own with the values it had. Audited in the same transaction."""
    row = _stored_rule(session, company_id, ruletype)
    if row is None:
        current = {s.kind.name: s for s in rule_settings(session, company_id)}[ruletype]
        row = RiskRule(companyid=company_id, ruletype=ruletype, threshold=current.threshold,
                       weight=current.weight)  # fmt: skip
        session.add(row)
    row.enabled, row.modifiedby = enabled, actor_id
    record_audit(session, actor_id=actor_id,
                 action="risk_rule_enabled" if enabled else "risk_rule_disabled",
                 object_type="risk_rule", object_id=ruletype, company_id=company_id,
                 details={"threshold": row.threshold, "weight": row.weight})  # fmt: skip


def delete_rule(session: Session, *, actor_id: int, company_id: int | None, ruletype: str) -> None:
    """Remove a stored rule, so the site rule (or the default) applies again; audited."""
    row = _stored_rule(session, company_id, ruletype)
    if row is None:
        raise RiskRuleMissing(ruletype)
    details = {"threshold": row.threshold, "weight": row.weight, "enabled": row.enabled}
    session.delete(row)
    record_audit(session, actor_id=actor_id, action="risk_rule_deleted", object_type="risk_rule",
                 object_id=ruletype, company_id=company_id, details=details)  # fmt: skip


def _learners(source: MoodleSource, now: int) -> list[tuple[int, int]]:
    """(user, course) of every active student enrolment outside the site course."""
    t = source.tables
    ue, e, u = t.user_enrolments, t.enrol, t.user
    ra, ctx, role = t.role_assignments, t.context, t.role
    students = (
        select(ra.c.userid, ctx.c.instanceid.label("courseid"))
        .join(ctx, and_(ctx.c.id == ra.c.contextid, ctx.c.contextlevel == 50))
        .join(role, and_(role.c.id == ra.c.roleid, role.c.archetype == "student"))
        .subquery()
    )
    query = (
        select(ue.c.userid, e.c.courseid)
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
    )
    with source.engine.connect() as conn:
        return [(int(a), int(b)) for a, b in conn.execute(query)]


def _moodle_figures(source: MoodleSource, users: set[int], courses: set[int]) -> dict[str, Any]:
    t = source.tables
    figures: dict[str, Any] = {}
    with source.engine.connect() as conn:
        figures["lastaccess"] = {
            int(i): int(a or 0)
            for i, a in conn.execute(select(t.user.c.id, t.user.c.lastaccess))
            if int(i) in users
        }
        la = t.user_lastaccess
        figures["course_access"] = {
            (int(u), int(c)): int(a or 0)
            for u, c, a in conn.execute(select(la.c.userid, la.c.courseid, la.c.timeaccess))
        }
        cm, cmc = t.course_modules, t.course_modules_completion
        tracked = (cm.c.completion > 0, cm.c.deletioninprogress == 0)
        figures["modules"] = {
            int(c): int(n)
            for c, n in conn.execute(
                select(cm.c.course, func.count()).where(*tracked).group_by(cm.c.course)
            )
        }
        figures["completed"] = {
            (int(u), int(c)): int(n)
            for u, c, n in conn.execute(
                select(cmc.c.userid, cm.c.course, func.count())
                .join(cm, cm.c.id == cmc.c.coursemoduleid)
                .where(*tracked, cmc.c.completionstate.in_((1, 2)))
                .group_by(cmc.c.userid, cm.c.course)
            )
        }
        figures["company"] = {}
        if source.features().has_iomad:
            cu = t.company_users
            for user, company in conn.execute(
                select(cu.c.userid, func.min(cu.c.companyid)).group_by(cu.c.userid)
            ):
                figures["company"][int(user)] = int(company)
    return figures


def compute_risk_scores(
    appdb: AppDB, source: MoodleSource, *, now: int, flag_score: int
) -> list[tuple[int, int]]:
    """Score every active learner in every course; returns the newly flagged (user, course)."""
    learners = _learners(source, now)
    figures = _moodle_figures(source, {u for u, _ in learners}, {c for _, c in learners})
    with appdb.transaction() as session:
        rules = effective_rules(session)
        engagement = {
            (r.userid, r.courseid): r
            for r in session.execute(select(Engagement.userid, Engagement.courseid,
                                            Engagement.seconds_7, Engagement.active_days_30))
        }  # fmt: skip
        # (user, course) -> since when the flag stands; only rows flagged before this run.
        flagged_since = {
            (r.userid, r.courseid): r.flagged_at
            for r in session.execute(
                select(RiskScore.userid, RiskScore.courseid, RiskScore.flagged_at)
                .where(RiskScore.flagged.is_(True))
            )
        }  # fmt: skip
    computed = utcnow()
    rows, newly = [], []
    for user, course in learners:
        last_login = figures["lastaccess"].get(user, 0)
        course_access = figures["course_access"].get((user, course), 0)
        modules = figures["modules"].get(course, 0)
        done = figures["completed"].get((user, course), 0)
        active = engagement.get((user, course))
        values = {
            "min_time_7d_minutes": (active.seconds_7 if active else 0) / 60,
            "max_days_since_login": (now - last_login) / DAY_S if last_login else 9999,
            "min_completion_pct": 100 * done / modules if modules else 100,
            "min_active_days_30d": active.active_days_30 if active else 0,
            "max_days_since_course_access": (now - course_access) / DAY_S
            if course_access
            else 9999,
        }
        company = figures["company"].get(user)
        value, factors = score(rules.get(company, rules[None]), values)
        flagged = value >= flag_score
        if flagged and (user, course) not in flagged_since:
            newly.append((user, course))
        since = (flagged_since.get((user, course)) or computed) if flagged else None
        last = max(last_login, course_access) or None
        rows.append({"userid": user, "courseid": course, "score": value, "flagged": flagged,
                     "factors": json.dumps(factors, separators=(",", ":")),
                     "lastactivity": last, "computed_at": computed,
                     "flagged_at": since})  # fmt: skip
    with appdb.transaction() as session:
        upsert(session, table_of(RiskScore), rows, key=("userid", "courseid"),
               update=("score", "flagged", "factors", "lastactivity", "computed_at",
                       "flagged_at"))  # fmt: skip
        session.execute(delete(RiskScore).where(RiskScore.computed_at < computed))
    return newly


@dataclass(frozen=True)
class FlaggedLearner:
    userid: int
    courseid: int
    score: int
    factors: list[dict[str, Any]]
    lastactivity: int | None
    acked_at: Any
    acked_note: str | None


def flagged_learners(
    session: Session, *, user_ids: set[int] | None, course_ids: set[int] | None
) -> list[FlaggedLearner]:
    """Flagged learners in scope (None: no limit), highest score first, with their latest
    acknowledgement."""
    rows = session.execute(
        select(RiskScore.userid, RiskScore.courseid, RiskScore.score, RiskScore.factors,
               RiskScore.lastactivity)
        .where(RiskScore.flagged.is_(True))
        .order_by(RiskScore.score.desc(), RiskScore.userid)
    ).all()  # fmt: skip
    rows = [r for r in rows if (user_ids is None or r.userid in user_ids)
            and (course_ids is None or r.courseid in course_ids)]  # fmt: skip
    acks: dict[tuple[int, int], tuple[Any, str]] = {}
    keys = [(r.userid, r.courseid) for r in rows]
    for offset in range(0, len(keys), 500):
        chunk = keys[offset : offset + 500]
        for ack in session.execute(
            select(RiskAck.userid, RiskAck.courseid, RiskAck.timecreated, RiskAck.note)
            .where(tuple_(RiskAck.userid, RiskAck.courseid).in_(chunk))
            .order_by(RiskAck.timecreated)
        ):
            acks[(ack.userid, ack.courseid)] = (ack.timecreated, ack.note)
    return [
        FlaggedLearner(r.userid, r.courseid, r.score, json.loads(r.factors), r.lastactivity,
                       *acks.get((r.userid, r.courseid), (None, None)))
        for r in rows
    ]  # fmt: skip


def acknowledge(
    session: Session, *, actor_id: int, userid: int, courseid: int, note: str,
    company_id: int | None = None, ip: str | None = None,
) -> RiskAck:  # fmt: skip
    """A manager's acknowledgement with a note, audited in the same transaction."""
    note = (note or "").strip()
    if not note:
        raise RiskInputError("note", "say what you did or will do")
    if len(note) > MAX_NOTE:
        raise RiskInputError("note", f"at most {MAX_NOTE} characters")
    current = session.scalar(
        select(RiskScore.score).where(
            RiskScore.userid == userid, RiskScore.courseid == courseid, RiskScore.flagged.is_(True)
        )  # fmt: skip
    )
    if current is None:
        raise RiskInputError("learner", "this learner is not flagged in this course")
    ack = RiskAck(userid=userid, courseid=courseid, score=current, ackedby=actor_id, note=note)
    session.add(ack)
    record_audit(session, actor_id=actor_id, action="risk_acknowledged", object_type="risk_score",
                 object_id=f"{userid}:{courseid}", company_id=company_id, ip=ip,
                 details={"score": current, "note": note})  # fmt: skip
    return ack
