"""Bolt's (company B's) objects on the two-company site, each carrying a marker string, and
what a role of Acme may legitimately see of them: the material for the route walker.

Every object another company's viewer could try to reach is here — an email job, settings
with a secret, a template, an API token, a SCORM activity with a learner's summary, a flagged
learner, an at-risk rule, an audit entry — so a route that leaks any of them shows a marker.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from common.access.api_tokens import SCOPES, issue
from common.audit import record_audit
from common.mail.templates import TemplateFields, save_template
from common.models.analytics import RiskRule, RiskScore, ScormSummary
from common.models.api import ApiToken
from common.models.base import utcnow
from common.models.custom import CustomDashboard
from common.models.mail import CloudConf, CloudJob, CloudTemplate
from common.models.schedules import ReportSchedule
from tests.factories.sites import Site
from tests.services.mailer.conftest import configure, make_job

# Strings only Bolt's objects carry. "Bolt" itself is left out: Bolt's own members may see
# their company's name (the company selector lists it).
BOLT_MARKERS = ("Forklift", "Xena Learner", "BOLT-", "bolt.example", "Pallet")
LEARNER_NAMES = {n: f"{n.title()} Learner" for n in ("ana", "ben", "cara", "dan", "yuri", "zoe")}


@dataclass
class OtherCompany:
    company: int
    job: int
    token: int
    scorm: int
    learner: int
    course: int
    schedule: int = 0
    dashboard: int = 0
    objects: dict[str, Any] = field(default_factory=dict)


def build_bolt_objects(app, site: Site) -> OtherCompany:  # type: ignore[no-untyped-def]
    ctx = app.extensions["manireports"]
    appdb = ctx.appdb
    bolt, yuri, forklift = site.companies["B"], site.users["yuri"], site.courses["Forklift"]
    configure(
        appdb,
        bolt,
        "sendgrid",
        {"api_key": "BOLT-SECRET-API-KEY"},
        sender_email="noreply@bolt.example",
        sender_name="BOLT-SENDER",
    )
    job = make_job(
        appdb,
        3,
        bolt,
        domain="bolt.example",
        subject="BOLT-JOB-SUBJECT",
        html="<p>BOLT-JOB-BODY</p>",
    )
    scorm = site.moodle.scorm(forklift, name="Pallet handling").instance
    with appdb.transaction() as session:
        save_template(
            session,
            bolt,
            "bulk",
            TemplateFields("BOLT-TEMPLATE-SUBJECT", "<p>BOLT-TEMPLATE-BODY</p>"),
            actor_id=site.users["mgr_b"],
        )
        _, token = issue(session, site.users["mgr_b"], "BOLT-TOKEN", tuple(SCOPES), bolt, None)
        token_id = token.id
        session.add(
            ScormSummary(
                scormid=scorm,
                courseid=forklift,
                userid=yuri,
                attempts=2,
                completion_status="completed",
                success_status="passed",
                best_score=91.0,
                total_time_s=600,
                has_suspend_data=False,
            )
        )
        session.add(
            RiskScore(
                userid=yuri,
                courseid=forklift,
                score=88,
                flagged=True,
                factors=json.dumps([{"label": "BOLT-RISK-FACTOR"}]),
                lastactivity=None,
                computed_at=utcnow(),
                flagged_at=utcnow(),
            )
        )
        session.add(
            RiskRule(
                companyid=bolt,
                ruletype="min_time_7d_minutes",
                threshold=77.0,
                weight=11,
                enabled=True,
            )
        )
        schedule = ReportSchedule(
            title="BOLT-SCHEDULE", report="course_progress", frequency="daily", at="09:00",
            tz="UTC", format="csv", companyid=bolt, createdby=site.users["mgr_b"],
            recipients_json=json.dumps({"users": [], "emails": ["boss@bolt.example"]}),
            next_run_at=utcnow(),
        )  # fmt: skip
        # Private: not even a plain member of Bolt may see it (a company one they could).
        dashboard = CustomDashboard(title="BOLT-DASHBOARD", visibility="private", companyid=bolt,
                                    ownerid=site.users["mgr_b"])  # fmt: skip
        session.add_all([schedule, dashboard])
        session.flush()
        schedule_id, dashboard_id = schedule.id, dashboard.id
        record_audit(
            session,
            actor_id=site.users["mgr_b"],
            action="bolt_private_action",
            object_type="thing",
            object_id="BOLT-AUDIT-OBJECT",
            company_id=bolt,
        )
    return OtherCompany(
        company=bolt, job=job, token=token_id, scorm=scorm, learner=yuri, course=forklift,
        schedule=schedule_id, dashboard=dashboard_id,
    )  # fmt: skip


def bolt_state(app, bolt: int) -> str:  # type: ignore[no-untyped-def]
    """A digest of every stored Bolt row a request could change."""
    rows: list[Any] = []
    with app.extensions["manireports"].appdb.transaction() as session:
        for model, column in (
            (CloudConf, CloudConf.companyid),
            (CloudJob, CloudJob.companyid),
            (CloudTemplate, CloudTemplate.companyid),
            (ApiToken, ApiToken.companyid),
            (RiskRule, RiskRule.companyid),
            (ReportSchedule, ReportSchedule.companyid),
            (CustomDashboard, CustomDashboard.companyid),
        ):
            for row in session.scalars(select(model).where(column == bolt).order_by(model.id)):
                rows.append(
                    {
                        c.name: str(getattr(row, c.key))
                        for c in model.__table__.columns
                        if c.name not in ("timemodified", "lastused")
                    }
                )
        for row in session.scalars(select(RiskScore).order_by(RiskScore.id)):
            rows.append((row.userid, row.courseid, row.flagged))
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
