"""Privacy: everything ManiReports holds about one Moodle user, exported or deleted.

`RULES` names, for every app table with a column that holds a user id, how that column is
treated (tests/common/test_privacy.py fails when a table of `common.models` has such a column
that no rule or exclusion covers, so a new table cannot be forgotten):

- the `subject` column marks rows *about* the user (their time, scores, sessions, runs):
  exported whole, and deleted — or, where the row must stay for others, anonymised (the audit
  log keeps what was done, without who; an unsubscribe keeps its address so it is honoured);
- `where` (a column and its value) narrows the rows the subject column names to those about a
  Moodle user: an identity mapping is about Moodle user 7 when its source is `moodle` and its
  LMS user id is "7" (a canvas user 7 is someone else). A subject column holding text is
  compared with the user's id as text;
- `actors` columns mark rows the user only acted on (a report they wrote, a job they created,
  a learner they acknowledged): the rows belong to others, so the export shows only the row's
  id, that column and its times, and deletion clears the column (NULL, or 0 where it is
  required).

Credentials are never exported (hashes of session ids and tokens, provider secrets, email
template data that may carry a temporary password).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, Table, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from common.appdb import AppDB
from common.audit import record_audit
from common.models import Base
from common.models.base import utcnow

REDACTED_COLUMNS = frozenset({"sid_hash", "token_hash", "secrets", "recipient_data"})
EXPORT_ACTION = "privacy_export"
DELETE_ACTION = "privacy_delete"


@dataclass(frozen=True)
class PrivacyRule:
    table: str
    why: str  # what the rows are and why they are kept
    subject: str | None = None  # rows about the user
    # None: the user's rows are deleted; else they stay with these columns set.
    anonymise: Mapping[str, Any] | None = None
    # Only rows matching this (a column and its value) are deleted; the user's others are
    # anonymised with `anonymise` (a private dashboard goes, a shared one stays).
    delete_only: tuple[str, Any] | None = None
    actors: Mapping[str, Any] = field(default_factory=dict)  # column -> value it is cleared to
    # Only rows matching this (a column and its value) are about the subject at all.
    where: tuple[str, Any] | None = None


RULES: tuple[PrivacyRule, ...] = (
    PrivacyRule("manireports_usertime_sessions", "time-on-course sessions", "userid"),
    PrivacyRule("manireports_usertime_daily", "time-on-course per day", "userid"),
    PrivacyRule("manireports_scorm_summary", "SCORM results per activity", "userid"),
    PrivacyRule("manireports_engagement", "active days and time per course", "userid"),
    PrivacyRule("manireports_risk_scores", "at-risk scores and their factors", "userid"),
    PrivacyRule(
        "manireports_risk_acks",
        "managers’ acknowledgements of a flagged learner",
        "userid",
        actors={"ackedby": 0},
    ),  # fmt: skip
    PrivacyRule("manireports_report_runs", "reports the user ran", "userid"),
    PrivacyRule(
        "manireports_api_tokens",
        "the user’s API tokens (hashes never exported)",
        "userid",
        actors={"createdby": None},
    ),  # fmt: skip
    PrivacyRule(
        "manireports_capability_grants",
        "capabilities given to the user",
        "userid",
        actors={"grantedby": None},
    ),  # fmt: skip
    PrivacyRule("manireports_web_sessions", "the user’s ManiReports sign-ins", "userid"),
    PrivacyRule("manireports_cloud_recip", "emails sent to the user (job recipients)", "userid"),
    PrivacyRule(
        "manireports_audit_logs",
        "what the user did (kept without who did it)",
        "userid",
        anonymise={"userid": None, "ip": None},
    ),  # fmt: skip
    PrivacyRule(
        "manireports_mail_unsubscribes",
        "the user’s unsubscribes (the address stays, so it is still honoured)",
        "userid",
        anonymise={"userid": None},
    ),  # fmt: skip
    PrivacyRule(
        "manireports_dashboards",
        "dashboards the user owns (private ones deleted, shared ones kept)",
        "ownerid",
        anonymise={"ownerid": 0},
        delete_only=("visibility", "private"),
    ),  # fmt: skip
    PrivacyRule(
        "manireports_custom_reports",
        "custom reports the user wrote or changed",
        actors={"createdby": 0, "modifiedby": 0},
    ),  # fmt: skip
    PrivacyRule(
        "manireports_cloud_jobs", "email jobs the user created", actors={"createdby": None}
    ),  # fmt: skip
    PrivacyRule(
        "manireports_report_schedules",
        "report schedules the user created",
        actors={"createdby": 0},
    ),  # fmt: skip
    PrivacyRule(
        "manireports_cloud_conf", "email settings the user changed", actors={"modifiedby": None}
    ),  # fmt: skip
    PrivacyRule(
        "manireports_risk_rules", "at-risk rules the user changed", actors={"modifiedby": None}
    ),  # fmt: skip
    PrivacyRule(
        "manireports_hr_sync_config",
        "HR sync settings the user changed",
        actors={"modifiedby": None},
    ),  # fmt: skip
    PrivacyRule(
        "manireports_hr_sync_runs", "HR sync runs the user started", actors={"startedby": None}
    ),  # fmt: skip
    PrivacyRule(
        "lms_identity_import",
        "identity mapping files the user uploaded",
        actors={"importedby": None},
    ),  # fmt: skip
    PrivacyRule(
        "lms_unenroll_policy",
        "auto-unenroll policy changes the user made",
        actors={"modifiedby": None},
    ),  # fmt: skip
    PrivacyRule(
        "lms_identity_map",
        "the user’s Google Workspace email, mapped to their Moodle account",
        "lms_user_id",
        where=("source", "moodle"),
    ),  # fmt: skip
    PrivacyRule(
        "lms_identity_parked",
        "Classroom courses the roster sync could not place the user in (no email mapped)",
        "lms_user_id",
        where=("source", "moodle"),
    ),  # fmt: skip
    PrivacyRule(
        "manireports_classroom_config",
        "Classroom settings the user changed",
        actors={"modifiedby": None},
    ),  # fmt: skip
    PrivacyRule(
        "manireports_classroom_courses",
        "Classroom course mappings the user added",
        actors={"createdby": None},
    ),  # fmt: skip
)

# Tables with a column that looks like a user's id yet holds none of anyone's data here.
EXCLUDED: dict[str, str] = {}


def rules_by_table() -> dict[str, PrivacyRule]:
    return {rule.table: rule for rule in RULES}


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _time_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if c.name.startswith("time") or c.name.endswith("_at")]


@dataclass
class Export:
    user_id: int
    tables: dict[str, list[dict[str, Any]]]

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.tables.items()}

    def zip_bytes(self) -> bytes:
        """One JSON file per table, and manifest.json saying what each holds."""
        manifest = {
            "user_id": self.user_id,
            "generated_at": utcnow().isoformat(),
            "generator": "ManiReports",
            "redacted_columns": sorted(REDACTED_COLUMNS),
            "tables": {
                rule.table: {
                    "file": f"{rule.table}.json",
                    "rows": len(self.tables.get(rule.table, [])),
                    "what": rule.why,
                    "about_the_user": rule.subject,
                    "only_where": dict([rule.where]) if rule.where else None,
                    "acted_by_the_user": sorted(rule.actors),
                }
                for rule in RULES
            }
            | {
                SCHEDULE_RECIPIENTS: {
                    "file": f"{SCHEDULE_RECIPIENTS}.json",
                    "rows": len(self.tables.get(SCHEDULE_RECIPIENTS, [])),
                    "what": SCHEDULE_RECIPIENTS_WHY,
                }
            },  # fmt: skip
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
            for name, rows in self.tables.items():
                archive.writestr(f"{name}.json", json.dumps(rows, indent=2, default=str))
        return buffer.getvalue()


def _about(table: Table, rule: PrivacyRule, user_id: int) -> ColumnElement[bool]:
    """The rows of ``table`` about ``user_id`` (``rule.subject`` must be set)."""
    assert rule.subject is not None
    column = table.c[rule.subject]
    mine = column == (str(user_id) if isinstance(column.type, String) else user_id)
    if rule.where is None:
        return mine
    name, value = rule.where
    return and_(mine, table.c[name] == value)


def _rows(session: Session, rule: PrivacyRule, user_id: int) -> list[dict[str, Any]]:
    table = _table(rule.table)
    rows: dict[int, dict[str, Any]] = {}
    if rule.subject:
        query = select(table).where(_about(table, rule, user_id)).order_by(table.c.id)
        for row in session.execute(query).mappings():
            rows[int(row["id"])] = {k: _jsonable(v) for k, v in row.items()
                                    if k not in REDACTED_COLUMNS}  # fmt: skip
    for column in rule.actors:
        shown = ["id", column, *_time_columns(table)]
        query = select(*(table.c[c] for c in shown)).where(table.c[column] == user_id)
        for row in session.execute(query.order_by(table.c.id)).mappings():
            if int(row["id"]) not in rows:
                rows[int(row["id"])] = {k: _jsonable(v) for k, v in row.items()}
    return [rows[key] for key in sorted(rows)]


# Report schedules name their Moodle-user recipients inside recipients_json, not in a column.
SCHEDULE_RECIPIENTS = "schedule_recipients"
SCHEDULE_RECIPIENTS_WHY = "report schedules that email reports to the user (removed on deletion)"


def _schedules_sending_to(session: Session, user_id: int) -> list[Any]:
    from common.models.schedules import ReportSchedule
    from common.schedules.store import recipients_of

    # LIKE narrows the rows to read; the JSON decides (12 is in "[112]" as text).
    query = select(ReportSchedule).where(ReportSchedule.recipients_json.like(f"%{user_id}%"))
    return [row for row in session.scalars(query.order_by(ReportSchedule.id))
            if user_id in recipients_of(row)[0]]  # fmt: skip


def _remove_from_schedules(session: Session, user_id: int) -> int:
    from common.schedules.store import recipients_of

    rows = _schedules_sending_to(session, user_id)
    for row in rows:
        users, emails = recipients_of(row)
        row.recipients_json = json.dumps({"users": [u for u in users if u != user_id],
                                          "emails": emails})  # fmt: skip
    return len(rows)


def export_user(
    appdb: AppDB, user_id: int, *, actor_id: int | None, ip: str | None = None, via: str = "web"
) -> Export:
    """Everything held about ``user_id``; the export is audited."""
    with appdb.transaction() as session:
        found = Export(user_id, {rule.table: _rows(session, rule, user_id) for rule in RULES})
        found.tables[SCHEDULE_RECIPIENTS] = [
            {"id": row.id, "title": row.title, "report": row.report}
            for row in _schedules_sending_to(session, user_id)
        ]
        record_audit(session, actor_id=actor_id, action=EXPORT_ACTION, object_type="user",
                     object_id=user_id, ip=ip,
                     details={"via": via, "rows": sum(found.counts.values())})  # fmt: skip
    return found


def held_counts(appdb: AppDB, user_id: int) -> dict[str, int]:
    """Rows per table that name ``user_id`` (about them or acted on by them)."""
    counts: dict[str, int] = {}
    with appdb.transaction() as session:
        for rule in RULES:
            table = _table(rule.table)
            about = [_about(table, rule, user_id)] if rule.subject else []
            names = or_(*about, *(table.c[c] == user_id for c in rule.actors))
            query = select(func.count()).select_from(table).where(names)
            counts[rule.table] = int(session.scalar(query) or 0)
        counts[SCHEDULE_RECIPIENTS] = len(_schedules_sending_to(session, user_id))
    return counts


@dataclass
class Deletion:
    user_id: int
    deleted: dict[str, int]
    anonymised: dict[str, int]


def delete_user(
    appdb: AppDB, user_id: int, *, actor_id: int | None, ip: str | None = None, via: str = "web"
) -> Deletion:
    """Delete (or, where rows stay for others, anonymise) everything about ``user_id``, in
    one transaction with its audit entry: all of it goes, or none."""
    deleted: dict[str, int] = {}
    anonymised: dict[str, int] = {}
    with appdb.transaction() as session:
        for rule in RULES:
            table = _table(rule.table)
            if rule.subject:
                mine = _about(table, rule, user_id)
                if rule.anonymise is None or rule.delete_only is not None:
                    gone = mine
                    if rule.delete_only is not None:
                        column, value = rule.delete_only
                        gone = and_(mine, table.c[column] == value)
                    result = session.execute(delete(table).where(gone))
                    deleted[rule.table] = _count(result)
                if rule.anonymise is not None:
                    # After the deletion above, the user's rows left are the ones kept.
                    result = session.execute(update(table).where(mine).values(**rule.anonymise))
                    anonymised[rule.table] = anonymised.get(rule.table, 0) + _count(result)
            if rule.actors:
                acted = or_(*(table.c[column] == user_id for column in rule.actors))
                touched = session.scalar(select(func.count()).select_from(table).where(acted))
                anonymised[rule.table] = anonymised.get(rule.table, 0) + int(touched or 0)
            for column, cleared in rule.actors.items():
                session.execute(
                    update(table).where(table.c[column] == user_id).values({column: cleared})
                )
        deleted[SCHEDULE_RECIPIENTS] = _remove_from_schedules(session, user_id)
        deleted = {k: v for k, v in deleted.items() if v}
        anonymised = {k: v for k, v in anonymised.items() if v}
        record_audit(session, actor_id=actor_id, action=DELETE_ACTION, object_type="user",
                     object_id=user_id, ip=ip,
                     details={"via": via, "deleted": deleted,
                              "anonymised": anonymised})  # fmt: skip
    return Deletion(user_id, deleted, anonymised)


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


__all__ = [
    "DELETE_ACTION",
    "EXCLUDED",
    "EXPORT_ACTION",
    "RULES",
    "Deletion",
    "Export",
    "PrivacyRule",
    "delete_user",
    "export_user",
    "held_counts",
]
