"""Report runs in the web tier: every execution path records its run, the limit answers 429
with a place in the queue, and /runs shows each viewer the runs they may see."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text, update

from common.models.custom import ReportRun
from common.reports import get_report
from common.reports.runs import start_run
from common.run_limit import LocalRunLimiter
from tests.web.api.conftest import bearer, token_for  # noqa: F401 - its fixture
from web.runs.execution import EXTENSION


def runs(app) -> list[ReportRun]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as db:
        return list(db.scalars(select(ReportRun).order_by(ReportRun.id)))


def test_the_data_endpoint_records_the_run(app, site, client_as):
    response = client_as("mgr_a").get("/reports/course_completion/data?days=90")
    assert response.status_code == 200
    total = response.get_json()["pagination"]["total"]
    [run] = runs(app)
    assert (run.report, run.origin, run.status) == ("course_completion", "web", "ok")
    assert (run.userid, run.companyid) == (site.users["mgr_a"], site.companies["A"])
    assert run.row_count == total
    assert json.loads(run.params_json)["days"] == 90
    assert run.finished_at is not None and run.duration_ms is not None and run.error is None


def test_an_export_records_the_rows_it_wrote(app, client_as):
    response = client_as("mgr_a").get("/reports/course_completion/export.csv?days=90")
    assert response.status_code == 200
    written = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    response.close()
    [run] = runs(app)
    assert (run.origin, run.status) == ("web", "ok")
    assert run.row_count == len(written) - 1  # the header is not a row


def test_a_bad_parameter_runs_nothing_and_records_nothing(app, client_as):
    response = client_as("mgr_a").get("/reports/course_completion/data?days=forever")
    assert response.status_code == 400
    assert runs(app) == []


def test_the_api_records_its_runs(app, site, token_for):  # noqa: F811
    client = app.test_client()
    token = token_for("mgr_a", company="A")
    assert client.get("/api/v1/reports/course_completion", headers=bearer(token)).status_code == 200
    export = client.get("/api/v1/reports/course_completion/export.csv", headers=bearer(token))
    export.get_data()
    export.close()
    assert [(r.origin, r.status) for r in runs(app)] == [("api", "ok"), ("api", "ok")]


@pytest.fixture
def one_slot(app):  # type: ignore[no-untyped-def]
    limiter = LocalRunLimiter(1, "test")
    app.extensions[EXTENSION] = limiter
    return limiter


def test_a_busy_limit_answers_429_with_a_place_and_lets_the_next_run_in(app, client_as, one_slot):
    client = client_as("mgr_a")
    hold = one_slot.acquire()
    busy = client.get("/reports/course_completion/data")
    assert busy.status_code == 429
    assert busy.headers["Retry-After"] == "1"
    body = busy.get_json()
    assert body["position"] == 0 and body["retry_after"] == 1
    assert "ahead of you" in body["error"]
    export = client.get("/reports/course_completion/export.csv")
    assert export.status_code == 429
    assert runs(app) == []  # a run refused by the limit never started
    hold.release()
    assert client.get("/reports/course_completion/data").status_code == 200
    assert one_slot.running == 0  # given back


def test_an_export_holds_its_slot_until_the_response_is_closed(app, client_as, one_slot):
    client = client_as("mgr_a")
    export = client.get("/reports/course_completion/export.csv", buffered=False)
    assert export.status_code == 200
    assert one_slot.running == 1
    assert client.get("/reports/course_completion/data").status_code == 429
    export.close()  # the client went away before reading it
    assert one_slot.running == 0
    [run, *_] = runs(app)
    assert run.status == "cancelled"


def test_an_export_read_to_its_end_frees_its_slot_before_closing(app, client_as, one_slot):
    export = client_as("mgr_a").get("/reports/course_completion/export.csv", buffered=False)
    export.get_data()
    assert one_slot.running == 0
    assert runs(app)[0].status == "ok"
    export.close()


def test_the_api_answers_429_with_retry_after(app, token_for, one_slot):  # noqa: F811
    hold = one_slot.acquire()
    token = token_for("mgr_a", company="A")
    response = app.test_client().get("/api/v1/reports/course_completion", headers=bearer(token))
    hold.release()
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["position"] == 0


def record(app, site, user: str, company: str | None, report: str = "course_completion",
           status: str = "ok", when: datetime | None = None,
           params: dict | None = None) -> int:  # fmt: skip
    appdb = app.extensions["manireports"].appdb
    run = start_run(
        appdb, viewer_id=site.users[user], company_id=site.companies[company] if company else None,
        report=get_report(report), params=params or {"days": 30}, origin="web",
    )  # fmt: skip
    with appdb.transaction() as db:
        db.execute(update(ReportRun).where(ReportRun.id == run.id).values(
            status=status, started_at=when or datetime(2026, 11, 17, 12, tzinfo=UTC),
            error="OperationalError: gone away" if status == "error" else None,
        ))  # fmt: skip
    return run.id


@pytest.fixture
def history(app, site):  # type: ignore[no-untyped-def]
    record(app, site, "mgr_a", "A")
    record(app, site, "ana", "A", report="course_progress", status="error")
    record(app, site, "yuri", "B", when=datetime(2026, 11, 1, 9, tzinfo=UTC))
    record(app, site, "mgr_b", "B", status="timeout")


def table_of(page: str) -> str:
    return page.split('id="runs-table"', 1)[1].split("</table>", 1)[0]


def test_an_admin_sees_every_run_with_names(client_as, history):
    page = client_as("admin").get("/runs/").get_data(as_text=True)
    table = table_of(page)
    assert table.count("<tr class=") == 4
    for name in ("mgr_a Manager", "Ana Learner", "Yuri Learner", "mgr_b Manager"):
        assert name in table
    assert "Concurrency limit:" in page


def test_a_company_manager_sees_their_companys_runs_only(client_as, history):
    table = table_of(client_as("mgr_a").get("/runs/").get_data(as_text=True))
    assert "mgr_a Manager" in table and "Ana Learner" in table
    assert "Yuri" not in table and "mgr_b" not in table


def test_anyone_else_sees_their_own_runs_only(client_as, history):
    page = client_as("ana").get("/runs/").get_data(as_text=True)
    table = table_of(page)
    assert table.count("<tr class=") == 1 and "run-error" in table
    assert "OperationalError: gone away" in table
    assert 'id="user"' not in page  # no one else to pick


def test_another_companys_runs_are_a_403(site, client_as, history):
    client = client_as("mgr_a")
    own = client.get("/runs/", query_string={"company": site.companies["A"]})
    assert own.status_code == 200
    bolt = client.get("/runs/", query_string={"company": site.companies["B"]})
    assert bolt.status_code == 403
    assert "Yuri" not in bolt.get_data(as_text=True)


def test_filters_by_report_status_user_name_and_dates(client_as, history):
    client = client_as("admin")

    def rows(**query: str) -> str:
        response = client.get("/runs/", query_string=query)
        assert response.status_code == 200
        return table_of(response.get_data(as_text=True))

    assert rows(report="course_progress").count("<tr class=") == 1
    assert rows(status="timeout").count("<tr class=") == 1
    only_yuri = rows(user="yuri")
    assert only_yuri.count("<tr class=") == 1 and "Yuri Learner" in only_yuri
    assert rows(user="nobody at all").count("<tr class=") == 0
    assert rows(**{"from": "2026-11-01", "to": "2026-11-01"}).count("<tr class=") == 1
    assert rows(**{"from": "2026-11-02"}).count("<tr class=") == 3


def test_dates_are_days_in_the_viewers_timezone(app, site, client_as):
    # 23:30 UTC on 16 Nov is already 17 Nov in Sydney.
    record(app, site, "mgr_a", "A", when=datetime(2026, 11, 16, 23, 30, tzinfo=UTC))
    with site.moodle.engine.begin() as conn:
        conn.execute(text("UPDATE mdl_user SET timezone = 'Australia/Sydney' WHERE id = :id"),
                     {"id": site.users["admin"]})  # fmt: skip
    client = client_as("admin")
    day = client.get("/runs/", query_string={"from": "2026-11-17", "to": "2026-11-17"})
    assert table_of(day.get_data(as_text=True)).count("<tr class=") == 1


@pytest.mark.parametrize("query", [{"status": "sideways"}, {"from": "yesterday"}])
def test_bad_filters_are_a_400_naming_the_field(client_as, history, query):
    response = client_as("admin").get("/runs/", query_string=query)
    assert response.status_code == 400
    assert next(iter(query)) in response.get_data(as_text=True)


def test_a_dashboard_records_one_run_per_report_it_shows(app, site, client_as):
    data = client_as("admin").get("/dashboards/admin/data?days=90").get_json()
    shown = {w["report"] for w in data["widgets"]}
    recorded = runs(app)
    assert sorted(r.report for r in recorded) == sorted(shown)
    assert {(r.origin, r.status, r.userid) for r in recorded} == {
        ("dashboard", "ok", site.users["admin"])
    }


def test_a_busy_dashboard_answers_429_and_runs_nothing(app, client_as, one_slot):
    hold = one_slot.acquire()
    response = client_as("admin").get("/dashboards/admin/data")
    hold.release()
    assert response.status_code == 429
    assert response.get_json()["position"] == 0
    assert runs(app) == []


def test_a_course_in_a_runs_parameters_is_named_only_when_the_viewer_may_see_it(
    app, site, client_as
):
    forklift, fire = site.courses["Forklift"], site.courses["Fire Safety"]
    record(app, site, "ana", "A", params={"course": forklift})
    record(app, site, "ana", "A", params={"course": fire})
    own = table_of(client_as("ana").get("/runs/").get_data(as_text=True))
    assert "Forklift" not in own and f"course #{forklift}" in own
    assert "course Fire Safety" in own
    admin = table_of(client_as("admin").get("/runs/").get_data(as_text=True))
    assert "course Forklift" in admin
