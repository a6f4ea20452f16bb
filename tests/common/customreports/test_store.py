"""Saving stored reports: validated, columns learned with their kinds, audited; nothing
written when anything is wrong. On SQLite and MariaDB Moodle databases."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from common.customreports.store import (
    column_key,
    delete_report,
    describe_columns,
    guess_kind,
    list_reports,
    save_report,
)
from common.customsql.params import QueryParam
from common.customsql.validator import QueryRejected
from common.errors import FieldError
from common.models.access import AuditLog
from common.models.custom import CustomReport
from common.tenancy import NotFound
from tests.common.customreports.conftest import COMPANY_LEARNERS, admin_viewer


def save(appdb, source, **changes):  # type: ignore[no-untyped-def]
    fields = {"report_id": None, "kind": "sql", "title": "Learners", "description": "",
              "sql_text": COMPANY_LEARNERS, "builder_json": None,
              "params": [QueryParam("pattern", "text", "Username like", False, "%")],
              "company_safe": True, "actor": admin_viewer(), "source": source}  # fmt: skip
    return save_report(appdb, **{**fields, **changes})


def stored(appdb) -> list[CustomReport]:  # type: ignore[no-untyped-def]
    return list_reports(appdb)


def audit(appdb) -> list[tuple[str, dict]]:  # type: ignore[no-untyped-def]
    with appdb.transaction() as session:
        rows = session.scalars(select(AuditLog).order_by(AuditLog.id))
        return [(r.action, json.loads(r.details or "{}")) for r in rows]


def test_a_saved_report_knows_its_columns_and_parameters(appdb, source):
    row = save(appdb, source)
    columns = json.loads(row.columns_json)
    assert [(c["key"], c["label"], c["kind"]) for c in columns] == [
        ("username", "username", "text"), ("first_name", "First name", "text"),
        ("timecreated", "timecreated", "datetime"),
    ]  # fmt: skip
    params = json.loads(row.params_json)
    assert [(p["name"], p["type"]) for p in params] == [
        ("companyid", "company"),
        ("pattern", "text"),
    ]
    assert audit(appdb) == [("custom_report_created", {
        "title": "Learners", "kind": "sql", "company_safe": True,
        "tables": ["company_users", "user"]})]  # fmt: skip


def test_rejected_sql_writes_nothing_and_says_where(appdb, source):
    with pytest.raises(FieldError) as raised:
        save(appdb, source, title="", sql_text="SELECT id\nFROM {user}; DROP TABLE {user}")
    fields = {e.field for e in raised.value.errors}
    assert fields == {"title", "sql"}
    rejected = next(e for e in raised.value.errors if isinstance(e, QueryRejected))
    assert rejected.line == 2
    assert stored(appdb) == [] and audit(appdb) == []


def test_company_safe_without_companyid_is_refused(appdb, source):
    with pytest.raises(FieldError) as raised:
        save(appdb, source, sql_text="SELECT u.username FROM {user} u", params=[])
    assert raised.value.field == "company_safe"
    assert stored(appdb) == []


def test_a_query_the_database_refuses_is_not_saved(appdb, source):
    with pytest.raises(FieldError) as raised:
        save(appdb, source, company_safe=False, params=[],
             sql_text="SELECT u.no_such_column FROM {user} u")  # fmt: skip
    assert raised.value.field == "sql" and "no_such_column" in raised.value.reason
    assert stored(appdb) == []


def test_a_change_is_audited_with_what_changed_and_a_delete_with_the_title(appdb, source):
    row = save(appdb, source)
    save(appdb, source, report_id=row.id, title="Company learners", company_safe=False)
    changed = audit(appdb)[-1]
    assert changed[0] == "custom_report_changed"
    assert changed[1]["changed"] == ["company_safe", "title"]
    assert changed[1]["previous_title"] == "Learners"
    delete_report(appdb, row.id, admin_viewer())
    assert audit(appdb)[-1] == ("custom_report_deleted",
                                {"title": "Company learners", "kind": "sql"})  # fmt: skip
    assert stored(appdb) == []
    with pytest.raises(NotFound):
        delete_report(appdb, row.id, admin_viewer())
    with pytest.raises(NotFound):
        save(appdb, source, report_id=row.id)


def test_column_keys_and_kinds():
    assert column_key("First name", 0) == "first_name"
    assert column_key("2nd", 1) == "c_2nd"
    assert column_key("%", 2) == "column_3"
    keys = [c["key"] for c in describe_columns(["id", "ID", "Name"], [(1, 2, "x")])]
    assert keys == ["id", "id_2", "name"]
    assert guess_kind("timecompleted", [1_700_000_000, None]) == "datetime"
    assert guess_kind("lastaccess", []) == "datetime"
    assert guess_kind("timespent", [3600]) == "duration"
    assert guess_kind("completion_pct", [12.5]) == "percent"
    assert guess_kind("learners", [3, 4]) == "int"
    assert guess_kind("average", [3.5]) == "float"
    assert guess_kind("course", ["Fire Safety"]) == "text"
    assert guess_kind("timecreated", ["yesterday"]) == "text"
    assert guess_kind("last_completed", [1_795_015_364]) == "datetime"
    assert guess_kind("completed_count", [12]) == "int"  # too small for a time
    assert guess_kind("timecreated", [1.5e9]) == "float"
