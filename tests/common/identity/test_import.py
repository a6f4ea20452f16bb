"""Staging and applying mapping files on SQLite and MariaDB: a good file, bad rows (with their
line numbers and fields, nothing applied), a re-import that updates, OneRoster, BOM/CRLF/quoted
fields, duplicates, and a 100,000-row file."""

from __future__ import annotations

import io
import json
import time

import pytest
from sqlalchemy import func, select

from common.errors import FieldError
from common.identity.applying import ACTION, apply_batch
from common.identity.rules import BUILT_IN_SOURCES, DOMAINS_UNSET_WARNING, Rules
from common.identity.staging import stage_file
from common.identity.summary import batch_info, find_mappings, source_summaries
from common.models.access import AuditLog
from common.models.identity import IdentityImportRow, IdentityMapping
from tests.common.identity.conftest import RULES, csv_bytes

GOOD = """lms_source,lms_user_id,google_email,full_name
canvas,101,ada@school.example,Ada Lovelace
canvas,102,Bob@School.example,Bob Builder
moodle,7,cara@school.example,
"""


def mappings(appdb):
    with appdb.sessions() as session:
        rows = session.execute(
            select(
                IdentityMapping.source,
                IdentityMapping.lms_user_id,
                IdentityMapping.google_email,
                IdentityMapping.full_name,
            ).order_by(IdentityMapping.source, IdentityMapping.lms_user_id)
        )
        return [tuple(r) for r in rows]  # fmt: skip


def audits(appdb):
    with appdb.sessions() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == ACTION)))


def test_a_good_file_is_staged_then_applied_with_counts_and_one_audit_event(appdb):
    staged = stage_file(appdb, csv_bytes(GOOD), RULES, actor_id=5)
    assert (staged.rows, staged.valid, staged.errors, staged.warnings) == (3, 3, [], [])
    assert mappings(appdb) == []  # staged only
    applied = apply_batch(appdb, staged.batch_id, actor_id=5)
    assert (applied.imported, applied.updated, applied.unchanged) == (3, 0, 0)
    assert mappings(appdb) == [
        ("canvas", "101", "ada@school.example", "Ada Lovelace"),
        ("canvas", "102", "bob@school.example", "Bob Builder"),
        ("moodle", "7", "cara@school.example", None),
    ]
    [event] = audits(appdb)
    assert (event.userid, event.object_id) == (5, staged.batch_id)
    assert json.loads(event.details or "{}")["imported"] == 3
    info = batch_info(appdb, staged.batch_id)
    assert info and info.applied and info.rows == 3
    with pytest.raises(FieldError, match="applied already"):
        apply_batch(appdb, staged.batch_id)
    assert len(audits(appdb)) == 1


def test_bad_rows_are_reported_by_line_and_field_and_nothing_is_applied(appdb):
    text = (
        "lms_source,lms_user_id,google_email,full_name\n"
        "canvas,1,ok@school.example,Fine\n"                   # line 2
        "sakai,2,two@school.example,Unknown source\n"         # line 3
        ',,three@school.example,"Multi\nline name"\n'         # lines 4-5
        "canvas,4,not-an-email,Bad\n"                         # line 6
        "canvas,5,five@gmail.com,Outside\n"                   # line 7
        "\n"                                                  # line 8: blank, skipped
        "canvas,6,,No email\n"                                # line 9
    )  # fmt: skip
    staged = stage_file(appdb, csv_bytes(text), RULES)
    assert (staged.rows, staged.valid) == (6, 1)
    found = [(e["line"], e["field"]) for e in staged.errors]
    assert found == [(3, "lms_source"), (4, "lms_source"), (4, "lms_user_id"),
                     (6, "google_email"), (7, "google_email"), (9, "google_email")]  # fmt: skip
    assert "unknown source 'sakai'" in staged.errors[0]["error"]
    assert "not a Google Workspace domain" in staged.errors[4]["error"]
    assert staged.errors[5]["error"] == "required"
    with pytest.raises(FieldError, match="rows in error"):
        apply_batch(appdb, staged.batch_id)
    assert mappings(appdb) == [] and audits(appdb) == []


def test_the_same_person_with_two_emails_is_an_error_on_both_lines(appdb):
    text = ("lms_source,lms_user_id,google_email\ncanvas,1,a@school.example\n"
            "canvas,2,b@school.example\ncanvas,1,c@school.example\n"
            "canvas,2,B@school.example\n")  # fmt: skip
    staged = stage_file(appdb, csv_bytes(text), RULES)
    assert [(e["line"], e["field"]) for e in staged.errors] == [(2, "lms_user_id"),
                                                                (4, "lms_user_id")]  # fmt: skip
    assert "also on line 4" in staged.errors[0]["error"]
    assert staged.valid == 2  # lines 3 and 5: the same email twice is no conflict


def test_a_reimport_updates_changed_emails_and_names_and_keeps_the_rest(appdb):
    apply_batch(appdb, stage_file(appdb, csv_bytes(GOOD), RULES).batch_id)
    again = ("lms_source,lms_user_id,google_email,full_name\n"
             "canvas,101,ada.l@school.example,Ada Lovelace\n"
             "canvas,102,bob@school.example,Robert Builder\n"
             "moodle,7,cara@school.example,\n"
             "moodle,8,dan@school.example,Dan\n")  # fmt: skip
    applied = apply_batch(appdb, stage_file(appdb, csv_bytes(again), RULES).batch_id)
    assert (applied.imported, applied.updated, applied.unchanged) == (1, 2, 1)
    assert mappings(appdb)[:2] == [
        ("canvas", "101", "ada.l@school.example", "Ada Lovelace"),
        ("canvas", "102", "bob@school.example", "Robert Builder"),
    ]
    [canvas, moodle] = source_summaries(appdb)
    assert (canvas.source, canvas.mappings, canvas.unique_emails) == ("canvas", 2, 2)
    assert (moodle.mappings, moodle.last_import is not None) == (2, True)
    assert [m.lms_user_id for m in find_mappings(appdb, email="ADA.L@school.example")] == ["101"]
    assert [m.lms_user_id for m in find_mappings(appdb, source="moodle", user_id="8")] == ["8"]


def test_a_oneroster_users_file_needs_a_source_and_maps_sourcedid_to_email(appdb):
    text = ("sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
            "givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,"
            "password\n"
            "u-1,active,,true,org1,student,ana,,Ana,Ng,,,ana@school.example,,,,09,\n"
            "u-2,active,,true,org1,teacher,tom@school.example,,Tom,Ito,,,,,,,,\n"
            "u-3,active,,true,org1,student,zed,,Zed,Z,,,,,,,,\n")  # fmt: skip
    with pytest.raises(FieldError) as missing:
        stage_file(appdb, csv_bytes(text), RULES)
    assert missing.value.field == "source"
    staged = stage_file(appdb, csv_bytes(text), RULES, source="Schoology")
    assert staged.errors == [{"line": 4, "field": "email", "error": "required"}]
    with appdb.sessions() as session:
        rows = session.execute(select(IdentityImportRow.source, IdentityImportRow.lms_user_id,
                                      IdentityImportRow.google_email, IdentityImportRow.full_name)
                               .where(IdentityImportRow.batch_id == staged.batch_id)
                               .order_by(IdentityImportRow.line)).all()  # fmt: skip
    assert [tuple(r) for r in rows[:2]] == [
        ("schoology", "u-1", "ana@school.example", "Ana Ng"),
        ("schoology", "u-2", "tom@school.example", "Tom Ito"),
    ]


@pytest.mark.parametrize("bom", [False, True])
def test_bom_crlf_and_quoted_fields(appdb, bom):
    text = ('"lms_source","lms_user_id","google_email","full_name"\n'
            'canvas,"1,5","q@school.example","Lovelace, Ada ""Countess"""\n'
            'canvas,9,x@school.example,"Two\nlines"\n'
            "canvas,,y@school.example,Missing id\n")  # fmt: skip
    staged = stage_file(appdb, csv_bytes(text, bom=bom, crlf=True), RULES)
    assert staged.errors == [{"line": 5, "field": "lms_user_id", "error": "required"}]
    with appdb.sessions() as session:
        first = session.execute(select(IdentityImportRow.lms_user_id, IdentityImportRow.full_name)
                                .where(IdentityImportRow.batch_id == staged.batch_id)
                                .order_by(IdentityImportRow.line)).first()  # fmt: skip
    assert tuple(first or ()) == ("1,5", 'Lovelace, Ada "Countess"')


def test_unreadable_files_name_the_problem(appdb):
    for data, reason in [(b"", "empty"), (b"name,email\nx,y\n", "header"),
                         (b"lms_source,lms_user_id,google_email\ncanvas,1,\xff@x.example\n",
                          "UTF-8")]:  # fmt: skip
        with pytest.raises(FieldError, match=reason) as error:
            stage_file(appdb, io.BytesIO(data), RULES)
        assert error.value.field == "file"


def test_unset_domains_warn_and_check_syntax_only(appdb):
    rules = Rules(BUILT_IN_SOURCES, ())
    staged = stage_file(appdb, csv_bytes("lms_source,lms_user_id,google_email\n"
                                         "canvas,1,a@anywhere.example\n"), rules)  # fmt: skip
    assert (staged.errors, staged.warnings) == ([], [DOMAINS_UNSET_WARNING])


def test_an_unknown_batch_is_404(appdb):
    with pytest.raises(FieldError) as error:
        apply_batch(appdb, "no-such-batch")
    assert error.value.status == 404


def big_file(rows: int, domain: str = "school.example") -> io.BytesIO:
    out = io.BytesIO()
    out.write(b"lms_source,lms_user_id,google_email,full_name\r\n")
    for i in range(rows):
        out.write(f"canvas,{i},user{i}@{domain},User {i}\r\n".encode())
    out.seek(0)
    return out


def test_a_100000_row_file_stages_and_applies_in_seconds(appdb):
    started = time.perf_counter()
    staged = stage_file(appdb, big_file(100_000), RULES)
    assert (staged.rows, staged.valid, staged.errors) == (100_000, 100_000, [])
    applied = apply_batch(appdb, staged.batch_id)
    assert applied.imported == 100_000
    with appdb.sessions() as session:
        assert session.scalar(select(func.count()).select_from(IdentityMapping)) == 100_000
    # Re-applying the same people: all unchanged, still in bulk.
    again = apply_batch(appdb, stage_file(appdb, big_file(100_000), RULES).batch_id)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 100_000)
    assert time.perf_counter() - started < 120
