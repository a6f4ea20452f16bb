"""Privacy: every app table naming a user is covered; the export holds the user's rows and
no one else's; deletion removes them, anonymises what stays for others, and leaves every other
user's rows as they were; both are audited."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.models import Base
from common.models.access import AuditLog, CapabilityGrant, WebSession
from common.models.analytics import (
    Engagement,
    RiskAck,
    RiskRule,
    RiskScore,
    ScormSummary,
    UsertimeDaily,
    UsertimeSession,
)
from common.models.api import ApiToken
from common.models.custom import CustomDashboard, CustomReport, ReportRun
from common.models.mail import CloudConf, CloudJob, CloudRecipient
from common.models.schedules import ReportSchedule
from common.models.unsubscribe import MailUnsubscribe
from common.privacy import (
    DELETE_ACTION,
    EXCLUDED,
    EXPORT_ACTION,
    REDACTED_COLUMNS,
    RULES,
    delete_user,
    export_user,
    held_counts,
)
from common.tenancy.columns import APP_TABLES

ANA, BEN, ADMIN = 101, 202, 2
WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
USER_NAMES = ("userid", "ownerid", "user_id")


def user_columns(table: Any) -> set[str]:
    """Columns that hold a user's id: the tenancy map's user column and, by name, every
    `…userid`, `…by` (createdby, ackedby) and owner column."""
    found = {c.name for c in table.columns
             if c.name in USER_NAMES or c.name.endswith(("userid", "by"))}  # fmt: skip
    mapped = APP_TABLES.get(table.name)
    if mapped is not None and mapped.user:
        found.add(mapped.user)
    return found


def test_every_table_naming_a_user_is_covered_or_excluded_with_a_reason() -> None:
    rules = {rule.table: rule for rule in RULES}
    missing = []
    for name, table in Base.metadata.tables.items():
        columns = user_columns(table)
        if not columns:
            continue
        if name in EXCLUDED:
            assert EXCLUDED[name].strip(), f"{name} excluded without a reason"
            continue
        rule = rules.get(name)
        covered = set() if rule is None else {rule.subject, *rule.actors}
        missing += [f"{name}.{column}" for column in sorted(columns - covered)]
    assert missing == []
    for rule in RULES:  # and every rule names real columns
        table = Base.metadata.tables[rule.table]
        where = [rule.where[0]] if rule.where else []
        for column in (rule.subject, *rule.actors, *(rule.anonymise or {}), *where):
            assert column is None or column in table.c, f"{rule.table}.{column}"


def test_the_check_sees_a_new_table_with_a_user_column() -> None:
    from sqlalchemy import BigInteger, Column, Integer, MetaData, Table

    table = Table("manireports_new_thing", MetaData(), Column("id", Integer),
                  Column("approvedby", BigInteger))  # fmt: skip
    assert user_columns(table) == {"approvedby"}


@pytest.fixture
def appdb(app_db_url: str):  # type: ignore[no-untyped-def]
    db = AppDB(app_db_url)
    yield db
    db.dispose()


def rows_of(user: int) -> list[Any]:
    """One row of every kind that names ``user``."""
    return [
        UsertimeSession(userid=user, courseid=5, sessionstart=WHEN, lastbeat=WHEN, duration=60),
        UsertimeDaily(userid=user, courseid=5, date=WHEN.date(), seconds=60),
        ScormSummary(scormid=7, courseid=5, userid=user),
        Engagement(userid=user, courseid=5),
        RiskScore(userid=user, courseid=5, factors="[]"),
        RiskAck(userid=user, courseid=5, score=70, ackedby=ADMIN, note=f"note about {user}"),
        ReportRun(userid=user, report="r", report_title="R", origin="web", status="ok"),
        ApiToken(userid=user, name="t", token_hash=f"{user:064d}", prefix="ab", scopes="x"),
        CapabilityGrant(userid=user, capability="local/manireports:viewreports"),
        WebSession(
            sid_hash=f"{user:064d}", userid=user, created=WHEN, last_seen=WHEN, expires=WHEN
        ),  # fmt: skip
        AuditLog(
            userid=user, action="login", object_type="user", outcome="success", ip="10.0.0.1"
        ),  # fmt: skip
        MailUnsubscribe(companyid=1, email=f"u{user}@example.com", userid=user),
        CustomDashboard(title=f"mine {user}", visibility="private", ownerid=user),
        CustomDashboard(title=f"shared {user}", visibility="global", ownerid=user),
        CustomReport(
            kind="sql", title=f"by {user}", sql_text="SELECT 1", createdby=user, modifiedby=user
        ),  # fmt: skip
        CloudConf(
            companyid=user,
            provider="smtp",
            sender_email="x@example.com",
            secrets="SECRET-CIPHERTEXT",
            modifiedby=user,
        ),  # fmt: skip
        RiskRule(companyid=user, ruletype="x", threshold=1, modifiedby=user),
    ]


def seed(appdb: AppDB) -> dict[str, int]:
    with appdb.transaction() as s:
        for user in (ANA, BEN):
            s.add_all(rows_of(user))
        # Ana acknowledged Ben's flag and created a job that mails Ben and her.
        s.add(RiskAck(userid=BEN, courseid=5, score=80, ackedby=ANA, note="Ben is behind"))
        job = CloudJob(companyid=1, type="bulk", source="ui", createdby=ANA,
                       subject_template="s", html_template="h")  # fmt: skip
        s.add(job)
        s.flush()
        s.add_all([
            CloudRecipient(jobid=job.id, email="ana@example.com", userid=ANA,
                           recipient_data='{"password": "temp-secret"}'),
            CloudRecipient(jobid=job.id, email="ben@example.com", userid=BEN),
        ])  # fmt: skip

        # Schedules mail reports to Moodle users named inside their recipients JSON: one to
        # Ana and Ben, one to Ben and user 1010 (whose id holds Ana's as text).
        def schedule(title: str, users: list[int]) -> ReportSchedule:
            recipients = json.dumps({"users": users, "emails": ["x@example.com"]})
            return ReportSchedule(title=title, report="course_completion", frequency="daily",
                                  tz="UTC", format="csv", createdby=9,
                                  recipients_json=recipients)  # fmt: skip

        both, others = schedule("both", [ANA, BEN]), schedule("others", [BEN, 1010])
        s.add_all([both, others])
        s.flush()
        return {"job": job.id, "both": both.id, "others": others.id}


def snapshot(appdb: AppDB, user: int) -> dict[str, list[dict[str, Any]]]:
    """Every row naming ``user`` in any column, per table."""
    found: dict[str, list[dict[str, Any]]] = {}
    with appdb.transaction() as s:
        for name, table in Base.metadata.tables.items():
            columns = user_columns(table)
            if not columns:
                continue
            for column in columns:
                query = select(table).where(table.c[column] == user).order_by(table.c.id)
                found.setdefault(name, []).extend(dict(r) for r in s.execute(query).mappings())
    return {k: v for k, v in found.items() if v}


def unzip(data: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: json.loads(archive.read(name)) for name in archive.namelist()}


def audit_entries(appdb: AppDB, action: str) -> list[AuditLog]:
    with appdb.transaction() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_the_export_holds_the_users_rows_and_no_one_elses(appdb: AppDB) -> None:
    seed(appdb)
    exported = export_user(appdb, ANA, actor_id=ADMIN, ip="10.9.9.9", via="test")
    files = unzip(exported.zip_bytes())
    manifest = files.pop("manifest.json")
    assert manifest["user_id"] == ANA
    assert set(files) == {f"{rule.table}.json" for rule in RULES} | {"schedule_recipients.json"}
    for rule in RULES:
        assert manifest["tables"][rule.table]["rows"] == len(files[f"{rule.table}.json"])
    assert [r["title"] for r in files.pop("schedule_recipients.json")] == ["both"]
    assert manifest["tables"]["schedule_recipients"]["rows"] == 1
    text = json.dumps(files)
    # Ben's rows are nowhere: not his learner rows, not the note Ana wrote about him.
    assert "Ben is behind" not in text and "ben@example.com" not in text
    assert "note about 202" not in text and "by 202" not in text
    for rows in files.values():
        for row in rows:
            assert BEN not in row.values(), row
    # Credentials never leave.
    assert "SECRET-CIPHERTEXT" not in text and "temp-secret" not in text
    assert not any(c in row for rows in files.values() for row in rows for c in REDACTED_COLUMNS)
    # Every kind of row about Ana is there.
    assert len(files["manireports_usertime_sessions.json"]) == 1
    assert files["manireports_usertime_sessions.json"][0]["duration"] == 60
    assert files["manireports_usertime_sessions.json"][0]["sessionstart"].startswith("2026-03-04")
    assert [r["email"] for r in files["manireports_cloud_recip.json"]] == ["ana@example.com"]
    acks = files["manireports_risk_acks.json"]
    assert sorted(("userid" in r, r.get("ackedby")) for r in acks) == [(False, ANA), (True, ADMIN)]
    assert len(files["manireports_dashboards.json"]) == 2
    assert files["manireports_cloud_jobs.json"][0]["createdby"] == ANA
    assert set(files["manireports_cloud_jobs.json"][0]) == {
        "id",
        "createdby",
        "timecreated",
        "timestarted",
        "timecompleted",
        "timemodified",
    }
    # Ana's login entry (and no export entry yet: it is written with the export).
    assert [r["action"] for r in files["manireports_audit_logs.json"]] == ["login"]
    (entry,) = audit_entries(appdb, EXPORT_ACTION)
    assert (entry.userid, entry.object_id, entry.ip) == (ADMIN, str(ANA), "10.9.9.9")
    assert sum(held_counts(appdb, ANA).values()) == sum(exported.counts.values())


def test_an_unknown_user_exports_empty_files(appdb: AppDB) -> None:
    seed(appdb)
    files = unzip(export_user(appdb, 999, actor_id=None).zip_bytes())
    assert all(rows == [] for name, rows in files.items() if name != "manifest.json")


def test_deletion_removes_the_users_rows_and_leaves_everyone_elses(appdb: AppDB) -> None:
    ids = seed(appdb)
    ben_before = snapshot(appdb, BEN)
    admin_before = snapshot(appdb, ADMIN)
    done = delete_user(appdb, ANA, actor_id=ADMIN, ip="10.9.9.9", via="test")
    assert snapshot(appdb, ANA) == {}
    # Ben's rows are untouched — but for the acknowledgement of his flag, which no longer
    # says that Ana made it — and so are the admin's (the new audit entry aside).
    for ack in ben_before["manireports_risk_acks"]:
        ack["ackedby"] = 0 if ack["ackedby"] == ANA else ack["ackedby"]
    assert snapshot(appdb, BEN) == ben_before
    admin_after = snapshot(appdb, ADMIN)
    admin_after["manireports_audit_logs"] = [
        e for e in admin_after["manireports_audit_logs"] if e["action"] != DELETE_ACTION
    ]
    # The admin's acknowledgement of Ana's flag was about Ana: it went with her.
    admin_before = {k: [r for r in v if r.get("userid") != ANA] for k, v in admin_before.items()}
    assert {k: v for k, v in admin_after.items() if v} == {
        k: v for k, v in admin_before.items() if v
    }
    assert done.deleted == {
        "manireports_usertime_sessions": 1, "manireports_usertime_daily": 1,
        "manireports_scorm_summary": 1, "manireports_engagement": 1,
        "manireports_risk_scores": 1, "manireports_risk_acks": 1,
        "manireports_report_runs": 1, "manireports_api_tokens": 1,
        "manireports_capability_grants": 1, "manireports_web_sessions": 1,
        "manireports_cloud_recip": 1, "manireports_dashboards": 1, "schedule_recipients": 1,
    }  # fmt: skip
    assert done.anonymised == {
        "manireports_audit_logs": 1, "manireports_mail_unsubscribes": 1,
        "manireports_dashboards": 1, "manireports_custom_reports": 1,
        "manireports_cloud_jobs": 1, "manireports_cloud_conf": 1,
        "manireports_risk_acks": 1, "manireports_risk_rules": 1,
    }  # fmt: skip
    with appdb.transaction() as s:
        # What stays for others: the job (no creator), Ben's recipient row, the shared
        # dashboard (no owner), the note on Ben, the address still unsubscribed.
        job = s.get(CloudJob, ids["job"])
        assert job is not None and job.createdby is None
        assert list(s.scalars(select(CloudRecipient.email))) == ["ben@example.com"]
        assert set(s.scalars(select(CustomDashboard.title))) == {
            "shared 101",
            "mine 202",
            "shared 202",
        }
        assert s.scalars(select(RiskAck.ackedby).where(RiskAck.note == "Ben is behind")).one() == 0
        recipients = {r.title: json.loads(r.recipients_json) for r in s.scalars(
            select(ReportSchedule))}  # fmt: skip
        assert recipients == {
            "both": {"users": [BEN], "emails": ["x@example.com"]},
            "others": {"users": [BEN, 1010], "emails": ["x@example.com"]},
        }
        unsubscribed = s.scalars(select(MailUnsubscribe).where(
            MailUnsubscribe.email == "u101@example.com")).one()  # fmt: skip
        assert unsubscribed.userid is None
        login = s.scalars(select(AuditLog).where(AuditLog.action == "login",
                                                 AuditLog.userid.is_(None))).one()  # fmt: skip
        assert login.ip is None
    (entry,) = audit_entries(appdb, DELETE_ACTION)
    assert (entry.userid, entry.object_id) == (ADMIN, str(ANA))
    assert json.loads(entry.details or "{}")["deleted"] == done.deleted
    # Again: nothing left to do, still audited.
    again = delete_user(appdb, ANA, actor_id=ADMIN)
    assert (again.deleted, again.anonymised) == ({}, {})
    assert len(audit_entries(appdb, DELETE_ACTION)) == 2


def test_a_failing_deletion_changes_nothing(appdb: AppDB, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(appdb)
    before = snapshot(appdb, ANA)
    import common.privacy as privacy

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(privacy, "record_audit", broken)
    with pytest.raises(RuntimeError):
        delete_user(appdb, ANA, actor_id=ADMIN)
    assert snapshot(appdb, ANA) == before


def test_identity_rows_are_about_a_moodle_user_only_where_their_source_is_moodle(
    appdb: AppDB,
) -> None:
    """lms_identity_map and lms_identity_parked hold an LMS's user id as text: the Moodle user
    7's rows are those of source moodle and id "7"; a canvas user 7 (and Moodle user 70) are
    other people."""
    from common.models.identity import IdentityMapping, ParkedIdentity

    seven = 7
    with appdb.transaction() as s:
        for source, user, email in (("moodle", "7", "seven@school.example"),
                                    ("canvas", "7", "canvas7@school.example"),
                                    ("moodle", "70", "seventy@school.example")):  # fmt: skip
            s.add(IdentityMapping(source=source, lms_user_id=user, google_email=email))
            s.add(ParkedIdentity(source=source, lms_user_id=user, course_id=5, error="x"))
    files = unzip(export_user(appdb, seven, actor_id=ADMIN).zip_bytes())
    assert [r["google_email"] for r in files["lms_identity_map.json"]] == ["seven@school.example"]
    assert [(r["source"], r["lms_user_id"]) for r in files["lms_identity_parked.json"]] == [
        ("moodle", "7")]  # fmt: skip
    assert files["manifest.json"]["tables"]["lms_identity_map"]["only_where"] == {
        "source": "moodle"}  # fmt: skip
    held = held_counts(appdb, seven)
    assert (held["lms_identity_map"], held["lms_identity_parked"]) == (1, 1)

    done = delete_user(appdb, seven, actor_id=ADMIN)
    assert done.deleted == {"lms_identity_map": 1, "lms_identity_parked": 1}
    with appdb.transaction() as s:
        assert sorted(s.execute(select(IdentityMapping.source, IdentityMapping.lms_user_id))) == [
            ("canvas", "7"), ("moodle", "70")]  # fmt: skip
        assert sorted(s.execute(select(ParkedIdentity.source, ParkedIdentity.lms_user_id))) == [
            ("canvas", "7"), ("moodle", "70")]  # fmt: skip
    assert held_counts(appdb, seven)["lms_identity_map"] == 0
