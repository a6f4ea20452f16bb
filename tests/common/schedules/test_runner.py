"""One scheduled run, in process, on the two-company site: a file per recipient scope (opened
with openpyxl and compared with what that scope may see), one mail job queued once however
often the command comes, the run history, and the failures: a deadline, a size cap, a report
gone, nobody left to send to."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

from common.appdb import AppDB
from common.customsql.execute import QueryTimeout
from common.mail.templates import SITE_WIDE
from common.models.custom import ReportRun
from common.models.mail import CloudJob, CloudRecipient
from common.models.schedules import ReportFile, ReportSchedule
from common.moodle import MoodleSource
from common.reports import RunContext, get_report
from common.schedules.audiences import audiences_of
from common.schedules.commands import manual_tag, run_command
from common.schedules.files import LinkExpired, file_by_token
from common.schedules.runner import Renderer, RunFailed, RunRequest, execute
from common.schedules.store import ScheduleInput, delete_schedule, save_schedule
from common.settings import Settings, load_settings
from tests.common.schedules.conftest import author
from tests.factories.sites import Site

DUE = datetime(2027, 3, 22, 9, 0, tzinfo=UTC)
COMPANY_B_LEARNERS = {"Xena Learner", "Yuri Learner", "Zoe Learner"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"MANIREPORTS_INSTANCE": str(tmp_path)})


def schedule(appdb: AppDB, source: MoodleSource, site: Site, **changes: object) -> ReportSchedule:
    fields: dict[str, object] = {
        "title": "Progress for Acme", "report": "course_progress", "frequency": "daily",
        "at": "09:00", "tz": "Europe/London", "format": "xlsx",
        "users": [str(site.users["mgr_a"]), str(site.users["dept_a"]),
                  str(site.users["teacher_a"])],
        "emails": "boss@example.com",
    }  # fmt: skip
    data = ScheduleInput(**{**fields, **changes})  # type: ignore[arg-type]
    return save_schedule(appdb, source, data, author(appdb, source, site.users["mgr_a"]))


def request(row: ReportSchedule, manual: bool = False) -> RunRequest:
    command = run_command(row.id, DUE, manual=manual_tag() if manual else None)
    return RunRequest(row.id, DUE, command.msg_id, manual=manual)


def learners_in(content: bytes) -> list[tuple[str, str]]:
    sheet = load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header = list(rows[0])
    at_learner, at_course = header.index("Learner"), header.index("Course")
    return sorted((str(r[at_learner]), str(r[at_course])) for r in rows[1:] if r[at_learner])


def expected(appdb: AppDB, source: MoodleSource, scope) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    report = get_report("course_progress")
    ctx = RunContext(source=source, scope=scope, now=int(time.time()), appdb=appdb)
    rows = report.stream(ctx, report.parse_params({}), report.page_request({}))
    return sorted((str(r["learner"]), str(r["course"])) for r in rows)


def files_by_recipient(appdb: AppDB, job_id: int) -> dict[str, ReportFile]:
    with appdb.transaction() as session:
        recipients = session.scalars(select(CloudRecipient).where(CloudRecipient.jobid == job_id))
        by_email = {}
        for r in recipients:
            file = session.get(ReportFile, json.loads(r.recipient_data)["file_id"])
            assert file is not None
            by_email[r.email] = file
        session.expunge_all()
    return by_email


def test_each_recipient_gets_the_rows_of_their_own_scope(appdb, source, site, settings):
    row = schedule(appdb, source, site)
    outcome = execute(appdb, source, settings, request(row))
    assert outcome.job_id is not None and outcome.recipients == 4 and outcome.left_out == ()
    # The author and the plain address share the author's scope: three renderings, not four.
    assert outcome.files == 3
    files = files_by_recipient(appdb, outcome.job_id)
    assert set(files) == {"mgr_a@example.com", "dept_a@example.com", "teacher_a@example.com",
                          "boss@example.com"}  # fmt: skip
    assert files["boss@example.com"].id == files["mgr_a@example.com"].id
    groups = {
        g.viewer_id: g.scope
        for g in audiences_of(appdb, source, row, get_report("course_progress")).groups
    }
    for name in ("mgr_a", "dept_a", "teacher_a"):
        got = learners_in(files[f"{name}@example.com"].content)
        assert got == expected(appdb, source, groups[site.users[name]]), name
        assert not {learner for learner, _ in got} & COMPANY_B_LEARNERS
    # A department manager sees Ana and Ben (Sales), not Cara and Dan (Ops); a teacher only
    # the course they teach.
    dept = {learner for learner, _ in learners_in(files["dept_a@example.com"].content)}
    assert dept == {"Ana Learner", "Ben Learner"}
    assert {c for _, c in learners_in(files["teacher_a@example.com"].content)} == {"First Aid"}
    assert len(learners_in(files["mgr_a@example.com"].content)) > len(
        learners_in(files["dept_a@example.com"].content))  # fmt: skip

    with appdb.transaction() as session:
        job = session.get(CloudJob, outcome.job_id)
        runs = list(session.scalars(select(ReportRun).order_by(ReportRun.id)))
        stored = session.get(ReportSchedule, row.id)
        assert job is not None and stored is not None
        assert (job.type, job.companyid, job.recipients_total) == (
            "scheduled_report", site.companies["A"], 4)  # fmt: skip
        assert [r.origin for r in runs] == ["schedule"] * 3
        assert {r.status for r in runs} == {"ok"}
        assert {(r.schedule_id, r.due_at, r.attempt) for r in runs} == {(row.id, DUE, 1)}
        assert all(r.file_name == "course_progress-20270322-0900.xlsx" for r in runs)
        assert sorted(r.file_size for r in runs) == sorted(
            f.size for f in {f.id: f for f in files.values()}.values())  # fmt: skip
        assert {r.userid for r in runs} == {site.users[n] for n in ("mgr_a", "dept_a",
                                                                    "teacher_a")}  # fmt: skip
        assert (stored.last_status, stored.attempts, stored.failed_error) == ("ok", 0, None)


def test_the_same_command_twice_queues_one_job(appdb, source, site, settings):
    row = schedule(appdb, source, site, users=[])
    first = execute(appdb, source, settings, request(row))
    again = execute(appdb, source, settings, request(row))
    assert first.job_id is not None and again.job_id is None
    manual = execute(appdb, source, settings, request(row, manual=True))
    assert manual.job_id not in (None, first.job_id)  # a manual run is a run of its own
    with appdb.transaction() as session:
        assert len(session.scalars(select(CloudJob.id)).all()) == 2


def test_people_who_may_no_longer_receive_are_left_out_and_said(appdb, source, site, settings):
    row = schedule(appdb, source, site, users=[str(site.users["dept_a"])], emails="")
    # Added behind the form's back: a learner (her own rows only), a suspended account and a
    # deleted one.
    with appdb.transaction() as session:
        session.execute(update(ReportSchedule).where(ReportSchedule.id == row.id).values(
            recipients_json=json.dumps({"users": [site.users["dept_a"], site.users["ana"],
                                                  site.users["suspended"],
                                                  site.users["gone"]]})))  # fmt: skip
    outcome = execute(appdb, source, settings, request(row))
    assert outcome.recipients == 2
    assert outcome.left_out == tuple(f"user {site.users[n]} may no longer receive this report"
                                     for n in ("suspended", "gone"))  # fmt: skip
    files = files_by_recipient(appdb, outcome.job_id)
    assert set(files) == {"dept_a@example.com", "ana@example.com"}
    assert {learner for learner, _ in learners_in(files["ana@example.com"].content)} == {
        "Ana Learner"}  # fmt: skip


def test_nobody_to_send_to_fails_the_run(appdb, source, site, settings):
    row = schedule(appdb, source, site, users=[str(site.users["dept_a"])], emails="")
    with appdb.transaction() as session:
        session.execute(update(ReportSchedule).where(ReportSchedule.id == row.id).values(
            recipients_json=json.dumps({"users": [site.users["suspended"],
                                                  site.users["gone"]]})))  # fmt: skip
    with pytest.raises(RunFailed, match="no recipient may receive this report"):
        execute(appdb, source, settings, request(row))
    with appdb.transaction() as session:
        assert session.scalars(select(CloudJob.id)).all() == []


def test_a_deleted_or_paused_schedule_sends_nothing(appdb, source, site, settings):
    gone = schedule(appdb, source, site)
    delete_schedule(appdb, source, author(appdb, source, site.users["mgr_a"]), gone.id)
    assert execute(appdb, source, settings, request(gone)).job_id is None
    paused = schedule(appdb, source, site, active=False)
    assert execute(appdb, source, settings, request(paused)).job_id is None
    # ...but a manual run of a paused one goes ahead.
    assert execute(appdb, source, settings, request(paused, manual=True)).job_id is not None


def test_a_run_past_its_deadline_stops_as_a_timeout(appdb, source, site, settings):
    row = schedule(appdb, source, site)
    report = get_report("course_progress")
    group = audiences_of(appdb, source, row, report).groups[0]
    with pytest.raises(QueryTimeout):
        Renderer(appdb, source, settings).render(row, report, group, request(row), 1,
                                                 deadline=time.monotonic() - 1)  # fmt: skip
    with appdb.transaction() as session:
        run = session.scalars(select(ReportRun)).one()
        assert (run.status, run.origin, run.schedule_id) == ("timeout", "schedule", row.id)
        assert "time limit" in (run.error or "")
        assert session.scalars(select(ReportFile.id)).all() == []


def test_a_file_over_the_size_cap_is_refused(appdb, source, site, settings):
    row = schedule(appdb, source, site)
    tiny = settings.with_overrides(schedule_max_file_mb=0)
    with pytest.raises(RunFailed, match="SCHEDULE_MAX_FILE_MB"):
        execute(appdb, source, tiny, request(row))
    with appdb.transaction() as session:
        assert session.scalars(select(ReportRun.status)).all() == ["error"]
        assert session.scalars(select(CloudJob.id)).all() == []


def test_a_report_gone_fails_the_run(appdb, source, site, settings):
    row = schedule(appdb, source, site)
    with appdb.transaction() as session:
        session.execute(update(ReportSchedule).where(ReportSchedule.id == row.id)
                        .values(report="custom_999999"))  # fmt: skip
    with pytest.raises(RunFailed, match="no longer exists"):
        execute(appdb, source, settings, request(row))


def test_over_the_attachment_size_the_email_links_the_file(appdb, source, site, settings):
    row = schedule(appdb, source, site, users=[])
    linked = settings.with_overrides(schedule_attach_max_kb=0, public_url="https://reports.example")
    outcome = execute(appdb, source, linked, request(row))
    with appdb.transaction() as session:
        data = json.loads(session.scalars(select(CloudRecipient.recipient_data)).one())
    prefix = "https://reports.example/schedules/files/"
    assert data["link"].startswith(prefix) and data["filename"].endswith(".xlsx")
    token = data["link"][len(prefix) :]
    found = file_by_token(appdb, token)
    assert found.id == data["file_id"] and learners_in(found.content)
    with pytest.raises(LinkExpired):
        file_by_token(appdb, token, now=found.expires_at + timedelta(seconds=1))
    with pytest.raises(LookupError):
        file_by_token(appdb, "x" * 43)
    with pytest.raises(LookupError):
        file_by_token(appdb, "../../etc/passwd")
    # Without PUBLIC_URL the link points at the web tier's own address.
    local = settings.with_overrides(schedule_attach_max_kb=0, public_url=None, web_port=8123)
    again = execute(appdb, source, local, request(row, manual=True))
    assert outcome.job_id and again.job_id
    with appdb.transaction() as session:
        last = session.scalars(select(CloudRecipient.recipient_data)
                               .where(CloudRecipient.jobid == again.job_id)).one()  # fmt: skip
    assert json.loads(last)["link"].startswith(f"http://{settings.web_host}:8123/schedules/files/")
    # Small enough: attached, no link.
    attached = execute(appdb, source, settings, request(row, manual=True))
    with appdb.transaction() as session:
        data = session.scalars(select(CloudRecipient.recipient_data)
                               .where(CloudRecipient.jobid == attached.job_id)).one()  # fmt: skip
    assert json.loads(data)["link"] == ""


def test_a_site_wide_schedule_queues_on_the_site_company(appdb, source, site, settings):
    admin = author(appdb, source, site.users["admin"])
    data = ScheduleInput(title="Everyone", report="course_progress", frequency="daily",
                         at="07:00", tz="UTC", format="csv", emails="ops@example.com")  # fmt: skip
    row = save_schedule(appdb, source, data, admin)
    assert row.companyid is None
    outcome = execute(appdb, source, settings, request(row))
    with appdb.transaction() as session:
        job = session.get(CloudJob, outcome.job_id)
        file = session.scalars(select(ReportFile)).one()
        assert job is not None and job.companyid == SITE_WIDE
        assert file.companyid is None and file.content_type == "text/csv"
        text = file.content.decode()
    assert all(name in text for name in ("Ana Learner", "Xena Learner"))
