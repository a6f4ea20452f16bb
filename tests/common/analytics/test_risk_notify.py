"""Emails to company managers about newly flagged learners, on the two-company site: one job a
company, its managers as recipients, its learners only, and never twice for the same flag."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from common.analytics.risk import acknowledge, compute_risk_scores
from common.analytics.risk_notify import HTML, SUBJECT, create_risk_jobs, notify_after_scoring
from common.bus import Bus, command_subject
from common.db import make_engine
from common.mail.jobs import create_job
from common.models.analytics import RiskScore
from common.models.mail import CloudJob, CloudRecipient
from common.moodle import MoodleSource
from common.templating import render
from common.tenancy import TenantScope
from tests.factories.moodle import MoodleFactory
from tests.factories.sites import NOW
from tests.support import make_settings

LATER = datetime(2100, 1, 1, tzinfo=UTC)


def score_site(appdb, source, flag_score=50) -> set[tuple[int, int]]:  # type: ignore[no-untyped-def]
    compute_risk_scores(appdb, source, now=NOW, flag_score=flag_score)
    with appdb.transaction() as db:
        rows = db.execute(select(RiskScore.userid, RiskScore.courseid)
                          .where(RiskScore.flagged.is_(True))).all()  # fmt: skip
    return {(r.userid, r.courseid) for r in rows}


def mailed(appdb) -> dict[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """company -> {job, recipients: {userid: data}} of every risk job."""
    with appdb.transaction() as db:
        jobs = db.scalars(select(CloudJob).where(CloudJob.source == "risk")).all()
        found: dict[int, dict[str, Any]] = {}
        for job in jobs:
            recipients = db.execute(select(CloudRecipient.userid, CloudRecipient.email,
                                           CloudRecipient.recipient_data)
                                    .where(CloudRecipient.jobid == job.id)).all()  # fmt: skip
            assert job.companyid not in found, "one job per company"
            found[job.companyid] = {
                "type": job.type, "status": job.status,
                "recipients": {r.userid: json.loads(r.recipient_data) for r in recipients},
                "emails": {r.email for r in recipients},
            }  # fmt: skip
    return found


def learners_of(data: dict[str, Any]) -> set[tuple[int, int]]:
    return {(x["userid"], x["courseid"]) for x in data["learners"]}


def company_pairs(site, flagged, company: str) -> set[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """The flagged (user, course) a manager of `company` sees: own learners, own or shared
    courses."""
    users = {site.users[u] for u, c in site.user_company.items() if c == company}
    courses = {site.courses[n] for n, c in site.course_company.items() if c in (company, None)}
    return {(u, c) for u, c in flagged if u in users and c in courses}


def test_each_company_gets_one_job_for_its_managers_with_its_learners(appdb, site):
    source = MoodleSource(site.url)
    flagged = score_site(appdb, source)
    job_ids = create_risk_jobs(appdb, source, create_job)
    jobs = mailed(appdb)
    a, b = site.companies["A"], site.companies["B"]
    assert len(job_ids) == 2 and set(jobs) == {a, b}
    assert jobs[a]["type"] == "bulk" and jobs[a]["status"] == "pending"
    # Company managers only (managertype 1): multi and mgr_a_in_b manage A too (mgr_a_in_b is
    # a plain member of B, so not B's); rep_b only reports on B.
    managers_a = {site.users[name] for name in ("mgr_a", "multi", "mgr_a_in_b")}
    assert set(jobs[a]["recipients"]) == managers_a
    assert set(jobs[b]["recipients"]) == {site.users["mgr_b"]}
    assert jobs[b]["emails"] == {"mgr_b@example.com"}
    expected_a, expected_b = company_pairs(site, flagged, "A"), company_pairs(site, flagged, "B")
    assert expected_a and expected_b
    for data in jobs[a]["recipients"].values():
        assert learners_of(data) == expected_a and data["company"] == "Acme"
        assert data["count"] == len(expected_a)
    (data_b,) = jobs[b]["recipients"].values()
    assert learners_of(data_b) == expected_b
    # Isolation: no Acme learner's name reaches Bolt's manager.
    acme_names = {f"{u.title()} Learner" for u, c in site.user_company.items()
                  if c == "A" and u not in site.deleted}  # fmt: skip
    assert not acme_names & {x["name"] for x in data_b["learners"]}
    source.dispose()


def test_the_digest_renders_the_learners(appdb, site):
    source = MoodleSource(site.url)
    score_site(appdb, source)
    create_risk_jobs(appdb, source, create_job)
    data = mailed(appdb)[site.companies["A"]]["recipients"][site.users["mgr_a"]]
    html = render(HTML, data)
    assert "Dear mgr_a" in html and "Ana Learner" in html and "Fire Safety" in html
    assert render(SUBJECT, data, escape_html=False) == f"{data['count']} learner(s) newly at " \
        "risk in Acme"  # fmt: skip
    source.dispose()


def test_a_second_run_mails_nothing_new(appdb, site):
    source = MoodleSource(site.url)
    score_site(appdb, source)
    assert len(create_risk_jobs(appdb, source, create_job)) == 2
    score_site(appdb, source)  # the next day: the same flags still stand
    assert create_risk_jobs(appdb, source, create_job) == []
    assert len(mailed(appdb)) == 2
    source.dispose()


def test_an_acknowledged_flag_is_not_mailed(appdb, site):
    source = MoodleSource(site.url)
    flagged = score_site(appdb, source)
    expected_b = company_pairs(site, flagged, "B")
    with appdb.transaction() as db:
        for user, course in expected_b:
            acknowledge(db, TenantScope(company_ids=(site.companies["B"],)), source,
                        actor_id=site.users["mgr_b"], userid=user, courseid=course,
                        note="Spoke to them.")  # fmt: skip
    create_risk_jobs(appdb, source, create_job)
    jobs = mailed(appdb)
    assert set(jobs) == {site.companies["A"]}
    source.dispose()


def test_a_learner_flagged_again_after_recovering_is_mailed_again(appdb, site):
    source = MoodleSource(site.url)
    flagged = score_site(appdb, source)
    create_risk_jobs(appdb, source, create_job)
    assert score_site(appdb, source, flag_score=100) < flagged  # most flags lifted
    score_site(appdb, source)  # and raised again: new flags
    again = create_risk_jobs(appdb, source, create_job)
    assert len(again) == 2
    source.dispose()


def test_a_flag_notified_by_a_concurrent_run_is_not_mailed_twice(appdb, site):
    source = MoodleSource(site.url)
    score_site(appdb, source)
    notify_everything_first = create_job

    def racing_create_job(session, **kwargs):  # type: ignore[no-untyped-def]
        # What this transaction sees when another run marked every flag notified meanwhile
        # (written here: SQLite allows one writer at a time).
        session.execute(update(RiskScore).values(notified_at=LATER))
        return notify_everything_first(session, **kwargs)

    assert create_risk_jobs(appdb, source, racing_create_job) == []
    assert mailed(appdb) == {}
    source.dispose()


def test_a_site_without_iomad_mails_its_site_admins(appdb, moodle_url):
    engine = make_engine(moodle_url)
    moodle = MoodleFactory(engine, iomad=False, now=NOW)
    course = moodle.course(fullname="Algebra")
    learner = moodle.user(username="learner", firstname="Lea", lastname="Rner")
    moodle.enrol(learner, course, timestart=NOW - 90 * 86_400)
    engine.dispose()
    source = MoodleSource(moodle_url)
    score_site(appdb, source)
    create_risk_jobs(appdb, source, create_job)
    jobs = mailed(appdb)
    assert set(jobs) == {0}
    (data,) = jobs[0]["recipients"].values()
    assert set(jobs[0]["recipients"]) == {moodle.ADMIN_ID}
    assert learners_of(data) == {(learner, course)}
    source.dispose()


def test_after_scoring_the_jobs_are_handed_to_the_mailers(appdb, site, nats_server, tmp_path):
    source = MoodleSource(site.url)
    score_site(appdb, source)
    off = make_settings(tmp_path, RISK_NOTIFY_MANAGERS="0")
    on = make_settings(tmp_path, RISK_NOTIFY_MANAGERS="1")

    async def run() -> tuple[list[int], list[int], list[int]]:
        bus = await Bus.connect(nats_server.url, "test-risk-notify")
        await bus.ensure_streams()
        asked: list[int] = []

        async def collect(msg) -> None:  # type: ignore[no-untyped-def]
            asked.append(json.loads(msg.data)["job"])

        await bus.nc.subscribe(command_subject("mailer", "dispatch_job"), cb=collect)
        skipped = await notify_after_scoring(bus, appdb, source, off, create_job)
        created = await notify_after_scoring(bus, appdb, source, on, create_job)
        await bus.nc.flush()
        await asyncio.sleep(0.2)
        await bus.close()
        return skipped, created, asked

    skipped, created, asked = asyncio.run(run())
    assert skipped == [] and len(created) == 2
    assert sorted(asked) == sorted(created)
    source.dispose()
