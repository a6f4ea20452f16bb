"""Candidates and runs on the lab course (tests/common/unenroll/conftest.py): the grace
boundary, never-accessed people counted from enrolment, protected domains and emails
(case-insensitive), dry runs, live runs through a recording remover, the share limit and the
admin alert, a policy that is off, and the audit events of each."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from common.models.access import AuditLog
from common.models.mail import CloudJob, CloudRecipient
from common.unenroll.candidates import CourseRef, find_candidates
from common.unenroll.policy import Policy
from common.unenroll.run import (
    DRY_ACTION,
    LIVE_ACTION,
    STOPPED_ACTION,
    NoRemover,
    run_policy,
)
from tests.factories.sites import NOW

POLICY = Policy(
    enabled=True,
    dry_run=True,
    grace_days=7,
    protected_domains=("staff.example",),
    protected_emails=("boss@school.example",),
    max_remove_share=0.2,
)


class RecordingRemover:
    def __init__(self, fail_for: str | None = None) -> None:
        self.removed: list[tuple[int, str]] = []
        self.fail_for = fail_for

    def remove(self, course_mapping: CourseRef, email: str) -> None:
        if email == self.fail_for:
            raise RuntimeError("Classroom said 500")
        self.removed.append((course_mapping.course_id, email))


def events(lab, action: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    with lab.appdb.transaction() as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
        return [json.loads(r.details or "{}") | {"_outcome": r.outcome} for r in rows]


def lab_people(preview, lab):  # type: ignore[no-untyped-def]
    return {p.user_id for p in preview.candidates if p.course.course_id == lab.course}


def test_candidates_grace_boundary_never_accessed_and_protection(lab):  # type: ignore[no-untyped-def]
    preview = find_candidates(lab.moodle, POLICY, NOW)
    # Everyone else on the site was seen yesterday: only the lab course has candidates.
    assert {p.course.course_id for p in preview.candidates} == {lab.course}
    by_id = {p.user_id: p for p in preview.candidates}
    assert set(by_id) == {lab.users["old"], lab.users["never"]}  # "edge" (exactly 7 days) stays
    old, never = by_id[lab.users["old"]], by_id[lab.users["never"]]
    assert (old.days_inactive, old.why) == (12, "no access for 12 days (last 2026-11-06)")
    assert (old.name, old.email, old.source) == ("Olga Old", "olga@school.example", "moodle")
    assert old.course.fullname == "Unenroll Lab"
    assert never.last_access is None
    assert (never.days_inactive, never.why) == (15, "never accessed; enrolled 15 days ago")
    protected = {p.person.user_id: p.reason for p in preview.protected}
    assert protected == {
        lab.users["staff"]: "protected domain staff.example",
        lab.users["boss"]: "protected email boss@school.example",
    }
    assert preview.rosters[lab.course] == 10


def test_one_second_past_the_grace_period_is_inactive(lab):  # type: ignore[no-untyped-def]
    preview = find_candidates(lab.moodle, POLICY, NOW + 1)
    assert lab.users["edge"] in lab_people(preview, lab)
    longer = find_candidates(lab.moodle, Policy(**{**POLICY.__dict__, "grace_days": 12}), NOW)
    assert lab_people(longer, lab) == {lab.users["never"]}  # exactly 12 days: not inactive


def test_sources_without_moodle_find_no_one(lab):  # type: ignore[no-untyped-def]
    canvas_only = Policy(**{**POLICY.__dict__, "sources": ("canvas",)})
    assert find_candidates(lab.moodle, canvas_only, NOW).candidates == []
    with_moodle = Policy(**{**POLICY.__dict__, "sources": ("canvas", "moodle")})
    assert len(find_candidates(lab.moodle, with_moodle, NOW).candidates) == 2


def test_policy_off_does_nothing(lab):  # type: ignore[no-untyped-def]
    remover = RecordingRemover()
    off = Policy(**{**POLICY.__dict__, "enabled": False, "dry_run": False})
    summary = run_policy(lab.appdb, lab.moodle, now=NOW, remover=remover, policy=off)
    assert (summary.enabled, summary.candidates, summary.removed, summary.stopped) == (
        False,
        0,
        0,
        None,
    )
    assert remover.removed == []
    with lab.appdb.transaction() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog)) == 0


def test_dry_run_removes_no_one_and_logs_each_candidate(lab):  # type: ignore[no-untyped-def]
    remover = RecordingRemover()
    summary = run_policy(lab.appdb, lab.moodle, now=NOW, remover=remover, policy=POLICY)
    assert summary.as_dict() | {"errors": []} == {
        "enabled": True,
        "dry_run": True,
        "candidates": 2,
        "removed": 0,
        "protected": 2,
        "failed": 0,
        "stopped": None,
        "errors": [],
    }
    assert remover.removed == [] and summary.exit_code == 0
    logged = events(lab, DRY_ACTION)
    assert sorted((e["email"], e["days_inactive"]) for e in logged) == [
        ("nina@school.example", 15),
        ("olga@school.example", 12),
    ]
    assert all(e["source"] == "moodle" and e["course"] == "Unenroll Lab" for e in logged)
    assert events(lab, LIVE_ACTION) == []


def test_the_stored_policy_is_read_when_none_is_given(lab):  # type: ignore[no-untyped-def]
    summary = run_policy(lab.appdb, lab.moodle, now=NOW)  # no row: off
    assert (summary.enabled, summary.candidates) == (False, 0)


def test_a_live_run_removes_exactly_the_candidates(lab):  # type: ignore[no-untyped-def]
    remover = RecordingRemover()
    live = Policy(**{**POLICY.__dict__, "dry_run": False})
    summary = run_policy(lab.appdb, lab.moodle, now=NOW, remover=remover, policy=live)
    assert sorted(remover.removed) == [
        (lab.course, "nina@school.example"),
        (lab.course, "olga@school.example"),
    ]
    assert (summary.removed, summary.stopped, summary.exit_code) == (2, None, 0)
    logged = events(lab, LIVE_ACTION)
    assert sorted(e["email"] for e in logged) == ["nina@school.example", "olga@school.example"]
    assert all(e["_outcome"] == "success" and "days_inactive" in e for e in logged)
    assert events(lab, DRY_ACTION) == []


def test_a_failed_removal_is_logged_and_the_others_go_on(lab):  # type: ignore[no-untyped-def]
    remover = RecordingRemover(fail_for="olga@school.example")
    live = Policy(**{**POLICY.__dict__, "dry_run": False})
    summary = run_policy(lab.appdb, lab.moodle, now=NOW, remover=remover, policy=live)
    assert remover.removed == [(lab.course, "nina@school.example")]
    assert (summary.removed, summary.failed, summary.exit_code) == (1, 1, 1)
    failed = [e for e in events(lab, LIVE_ACTION) if e["_outcome"] == "failed"]
    assert [e["email"] for e in failed] == ["olga@school.example"]
    assert "Classroom said 500" in failed[0]["error"]


def test_over_the_share_the_run_stops_before_anyone_and_alerts(lab):  # type: ignore[no-untyped-def]
    remover = RecordingRemover()
    strict = Policy(**{**POLICY.__dict__, "dry_run": False, "max_remove_share": 0.1})
    summary = run_policy(lab.appdb, lab.moodle, now=NOW, remover=remover, policy=strict)
    assert remover.removed == []
    assert summary.stopped == (
        "2 of 10 people in Unenroll Lab would be removed, more than the 10% limit"
    )
    assert summary.exit_code == 1 and summary.alert_job is not None
    assert events(lab, LIVE_ACTION) == []
    [stopped] = events(lab, STOPPED_ACTION)
    assert stopped["candidates"] == 2
    with lab.appdb.transaction() as s:
        job = s.get(CloudJob, summary.alert_job)
        assert job is not None and "stopped" in job.subject_template
        emails = list(s.scalars(select(CloudRecipient.email).where(CloudRecipient.jobid == job.id)))
    assert emails == ["admin@example.com"]  # Moodle's site admin (config siteadmins)


def test_a_live_run_without_a_remover_stops_before_anyone(lab):  # type: ignore[no-untyped-def]
    live = Policy(**{**POLICY.__dict__, "dry_run": False})
    with pytest.raises(NoRemover, match="no Classroom remover is configured"):
        run_policy(lab.appdb, lab.moodle, now=NOW, remover=None, policy=live)
    assert events(lab, LIVE_ACTION) == []


def test_the_identity_map_gives_the_email_to_remove(lab):  # type: ignore[no-untyped-def]
    from common.models.identity import IdentityMapping
    from common.unenroll.candidates import identity_resolver

    with lab.appdb.transaction() as s:
        s.add(
            IdentityMapping(
                source="moodle",
                lms_user_id=str(lab.users["old"]),
                google_email="olga.old@workspace.example",
            )
        )
        s.add(
            IdentityMapping(
                source="moodle",
                lms_user_id=str(lab.users["recent"]),
                google_email="rita@staff.example",
            )
        )
    preview = find_candidates(lab.moodle, POLICY, NOW, identity_resolver(lab.appdb))
    emails = {p.user_id: (p.email, p.moodle_email) for p in preview.candidates}
    assert emails[lab.users["old"]] == ("olga.old@workspace.example", "olga@school.example")
    assert emails[lab.users["never"]] == ("nina@school.example",) * 2  # not mapped
    remover = RecordingRemover()
    live = Policy(**{**POLICY.__dict__, "dry_run": False})
    run_policy(lab.appdb, lab.moodle, now=NOW, remover=remover, policy=live)
    assert (lab.course, "olga.old@workspace.example") in remover.removed
