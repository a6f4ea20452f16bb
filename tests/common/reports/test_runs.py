"""`recorded_run`: one row per report execution, its outcome and its figures, on SQLite and
MariaDB; and `manireports report run` records its runs as origin "cli"."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.customsql.execute import QueryTimeout
from common.errors import FieldError
from common.migrate import upgrade
from common.models.custom import ReportRun
from common.reports.runs import outcome_of, recorded_run
from tests.support import REPO, TEST_SECRET

REPORT = SimpleNamespace(type_name="custom_7", title="Completions by month")


@pytest.fixture
def appdb(app_db_url):  # type: ignore[no-untyped-def]
    db = AppDB(app_db_url)
    yield db
    db.dispose()


def stored(appdb: AppDB) -> list[ReportRun]:
    with appdb.transaction() as db:
        return list(db.scalars(select(ReportRun).order_by(ReportRun.id)))


def run(appdb: AppDB, **params: object):  # type: ignore[no-untyped-def]
    return recorded_run(appdb, viewer_id=5, company_id=2, report=REPORT, params=params,
                        origin="web")  # fmt: skip


def test_a_run_is_running_then_ok_with_its_figures(appdb):
    with run(appdb, days=30, course=4) as record:
        [during] = stored(appdb)
        assert during.status == "running" and during.finished_at is None
        record.row_count = 42
    [row] = stored(appdb)
    assert (row.status, row.row_count, row.error) == ("ok", 42, None)
    assert (row.userid, row.companyid, row.origin) == (5, 2, "web")
    assert (row.report, row.report_title) == ("custom_7", "Completions by month")
    assert json.loads(row.params_json) == {"days": 30, "course": 4}
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert row.duration_ms is not None and row.duration_ms >= 0


def test_a_failure_is_stored_in_one_short_line_and_still_raised(appdb):
    with pytest.raises(RuntimeError), run(appdb):
        raise RuntimeError("lost connection to the server\nTraceback (most recent call last): …")
    [row] = stored(appdb)
    assert row.status == "error"
    assert row.error == "RuntimeError: lost connection to the server"
    assert "Traceback" not in row.error


@pytest.mark.parametrize(
    ("exc", "status", "error"),
    [
        (QueryTimeout(30), "timeout", "sql: the query ran past its time limit of 30 s"),
        (FieldError("sql", "table `config` may not be read"), "rejected", "sql: table"),
        (GeneratorExit(), "cancelled", "the caller went away"),
    ],
)
def test_timeouts_refusals_and_cancellations_have_their_own_status(appdb, exc, status, error):
    with pytest.raises(type(exc)), run(appdb):
        raise exc
    [row] = stored(appdb)
    assert row.status == status
    assert row.error.startswith(error)


def test_secret_looking_parameters_are_not_stored(appdb):
    with run(appdb, days=7, api_token="abc", smtp_password="hunter2", secret="x"):
        pass
    [row] = stored(appdb)
    assert json.loads(row.params_json) == {"days": 7}


def test_an_unknown_origin_is_refused_before_anything_is_written(appdb):
    with pytest.raises(ValueError, match="origin"):
        recorded_run(appdb, viewer_id=1, company_id=None, report=REPORT, params={},
                     origin="carrier-pigeon").__enter__()  # fmt: skip
    assert stored(appdb) == []


def test_an_app_db_without_the_table_fails_a_required_record_only(tmp_path):
    bare = AppDB(f"sqlite:///{tmp_path / 'not-migrated.db'}")
    try:
        with recorded_run(bare, viewer_id=None, company_id=None, report=REPORT, params={},
                          origin="cli", required=False) as record:  # fmt: skip
            record.row_count = 3  # the run itself goes on
        assert record.status == "unrecorded"
        with pytest.raises(Exception, match="manireports_report_runs"):
            recorded_run(bare, viewer_id=None, company_id=None, report=REPORT, params={},
                         origin="cli").__enter__()  # fmt: skip
    finally:
        bare.dispose()


def test_outcome_of_an_error_without_a_message_names_its_kind():
    assert outcome_of(ZeroDivisionError()) == ("error", "ZeroDivisionError")
    assert outcome_of(None) == ("ok", None)


def test_the_cli_records_its_runs_with_the_rows_written(tmp_path, site):
    app_db = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(app_db)
    env = {"PATH": "/usr/bin:/bin", "MANIREPORTS_INSTANCE": str(tmp_path),
           "MOODLE_DATABASE_URL": site.url, "DATABASE_URL": app_db,
           "SECRET_KEY": TEST_SECRET}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "report", "run", "course_completion", "--days", "90"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = list(csv.reader(io.StringIO(result.stdout)))
    appdb = AppDB(app_db)
    try:
        [row] = stored(appdb)
    finally:
        appdb.dispose()
    assert (row.origin, row.status, row.userid) == ("cli", "ok", None)
    assert row.row_count == len(written) - 1
    assert json.loads(row.params_json)["days"] == 90
