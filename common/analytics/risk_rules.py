"""At-risk rules: the kinds of rule, how a rule turns a figure into points, and the stored
rule settings (site-wide, or a company's own that replace the site's) with audited changes.

A rule is a figure, a threshold and a weight. A learner breaking a rule gets between half and
all of its weight, more the further past the threshold; the score is the points over the total
weight of the enabled rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from common.audit import record_audit
from common.errors import FieldError, raise_all
from common.models.analytics import RiskRule
from common.tenancy import NotFound


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


@dataclass(frozen=True)
class Rule:
    kind: RuleKind
    threshold: float
    weight: int


def points(rule: Rule, value: float | None) -> float:
    """What breaking `rule` with `value` adds: 0, or from half to all of its weight.

    None is "never" (no login, course never opened): as far past a "max" rule as can be."""
    limit = rule.threshold
    if value is None:
        return rule.weight if rule.kind.direction == "max" else 0.0
    if rule.kind.direction == "min":
        if value >= limit:
            return 0.0
        severity = (limit - value) / limit if limit else 1.0
    else:
        if value <= limit:
            return 0.0
        severity = (value - limit) / limit if limit else 1.0
    return rule.weight * (0.5 + 0.5 * min(1.0, severity))


def score(
    rules: Iterable[Rule], values: Mapping[str, float | None]
) -> tuple[int, list[dict[str, Any]]]:
    """(0-100 score, the factors that added points) for one learner in one course. A factor's
    value None means "never" and is stored as null: pages say "never", not a number. A factor
    holds no label: `stored_factors` adds the rule's label as a page reads it."""
    return RuleSet(rules).score(values)


class RuleSet:
    """One company's (or the site's) enabled rules, prepared once for scoring every learner."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = [r for r in rules if r.weight > 0]
        self.total = sum(r.weight for r in self.rules)

    def score(self, values: Mapping[str, float | None]) -> tuple[int, list[dict[str, Any]]]:
        factors = []
        earned = 0.0
        for rule in self.rules:
            value = values[rule.kind.name]
            added = points(rule, value)
            if added:
                earned += added
                factors.append({"rule": rule.kind.name,
                                "value": None if value is None else round(value, 1),
                                "threshold": rule.threshold,
                                "points": round(100 * added / self.total, 1)})  # fmt: skip
        return (round(100 * earned / self.total) if self.total else 0), factors


def stored_factors(raw: str | None) -> list[dict[str, Any]]:
    """A stored score's factors (JSON) as pages show them, each with its rule's label (rows
    written before labels were left out carry their own); [] for anything unreadable."""
    try:
        parsed = json.loads(raw or "[]")
    except ValueError:
        return []
    if not isinstance(parsed, list):
        return []
    factors = [f for f in parsed if isinstance(f, dict)]
    for factor in factors:
        kind = RULE_KINDS.get(str(factor.get("rule")))
        factor.setdefault("label", kind.label if kind else str(factor.get("rule", "")))
    return factors


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


def _stored_rule(session: Session, company_id: int | None, ruletype: str) -> RiskRule | None:
    if ruletype not in RULE_KINDS:
        raise FieldError("ruletype", f"must be one of {', '.join(RULE_KINDS)}")
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
        raise FieldError("ruletype", f"must be one of {', '.join(RULE_KINDS)}")
    errors = []  # every problem at once
    if not 0 <= threshold <= 100_000:
        errors.append(FieldError("threshold", "must be from 0 to 100000"))
    if not 0 <= weight <= 100:
        errors.append(FieldError("weight", "must be from 0 to 100"))
    raise_all(errors)
    row = _stored_rule(session, company_id, ruletype)
    if row is None:
        row = RiskRule(companyid=company_id, ruletype=ruletype)
        session.add(row)
    row.threshold, row.weight, row.enabled, row.modifiedby = threshold, weight, enabled, actor_id
    details = {"threshold": threshold, "weight": weight, "enabled": enabled}
    record_audit(session, actor_id=actor_id, action="risk_rule_saved", object_type="risk_rule",
                 object_id=ruletype, company_id=company_id, details=details)  # fmt: skip


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
        raise NotFound(f"no {ruletype} rule is stored here (the site's or the default applies)")
    details = {"threshold": row.threshold, "weight": row.weight, "enabled": row.enabled}
    session.delete(row)
    record_audit(session, actor_id=actor_id, action="risk_rule_deleted", object_type="risk_rule",
                 object_id=ruletype, company_id=company_id, details=details)  # fmt: skip
