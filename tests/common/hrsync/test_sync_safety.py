"""HR sync safety: throttling and outages keep the cursor pinned until a run finishes, the
suspension limit stops a run before any write, a dry run writes nothing and shows the exact diff,
a refused token or key stops at once (SQLite, MariaDB)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from common.models.hrsync import SETTINGS_ROW, HrSyncConfig, HrSyncRun
from common.models.mail import CloudJob, CloudRecipient

NOW = datetime.now(UTC).replace(microsecond=0)


def ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def staff(sync, count):
    ids = [sync.bamboo.add_employee(f"P{i}", "Person", f"p{i}@acme.example", at=ago(20 - i))
           for i in range(count)]  # fmt: skip
    assert sync.run().created == count
    return ids


def first_run_pending(sync):
    """Three new hires; returns their ids."""
    return [sync.bamboo.add_employee(f"N{i}", "New", f"n{i}@acme.example", at=ago(3 - i))
            for i in range(3)]  # fmt: skip


# -- BambooHR throttling and errors -----------------------------------------------------------


def test_throttling_is_retried_after_retry_after(sync):
    first_run_pending(sync)
    sync.bamboo.throttle(2, retry_after=3, path_contains="changed")
    sync.bamboo.unavailable(1, retry_after=2, path_contains="directory")
    summary = sync.run()
    assert (summary.created, summary.errors) == (3, [])
    assert sync.waits == [3.0, 3.0, 2.0]
    assert sync.bamboo.count("changed", status=429) == 2
    assert sync.bamboo.count("directory", status=503) == 1


def test_server_errors_are_retried_with_exponential_back_off(sync):
    first_run_pending(sync)
    sync.bamboo.fail(3, status=502, path_contains="changed")
    summary = sync.run()
    assert (summary.created, summary.errors) == (3, [])
    assert sync.waits == [0.5, 1.0, 2.0]


def test_a_429_without_retry_after_is_not_retried_and_pins_the_cursor(sync):
    staff(sync, 2)
    pinned = sync.cursor()
    sync.bamboo.add_employee("Late", "Hire", "late@acme.example", at=ago(1))
    sync.bamboo.throttle(1, retry_after=None, path_contains="changed")
    sync.bamboo.clear_log()
    writes = sync.writes()

    failed = sync.run()

    assert failed.exit_code == 1 and failed.status == "error"
    assert "429 without Retry-After" in failed.error
    assert failed.errors == [{"employee_id": None, "error": failed.error}]
    assert sync.bamboo.count("changed") == 1 and sync.waits == []
    assert sync.cursor() == pinned and sync.writes() == writes

    done = sync.run()
    assert (done.created, done.exit_code) == (1, 0)
    assert sync.cursor()["since"] != pinned["since"]


def test_throttled_past_the_attempts_on_one_employee_pins_the_cursor(sync):
    ids = staff(sync, 3)
    pinned = sync.cursor()
    sync.bamboo.terminate(ids[0], at=ago(1))
    sync.bamboo.throttle(10, retry_after=1, path_contains=f"/employees/{ids[0]}")

    failed = sync.run(HR_SYNC_MAX_SUSPEND_SHARE="0.5")

    assert failed.exit_code == 1
    assert [e["employee_id"] for e in failed.errors] == [ids[0]]
    assert "still throttled" in failed.errors[0]["error"]
    assert sync.waits == [1.0] * 4  # five attempts, four waits
    assert sync.cursor() == pinned
    assert not sync.moodle.find_user(idnumber=ids[0]).suspended

    sync.bamboo.clear_faults()
    done = sync.run(HR_SYNC_MAX_SUSPEND_SHARE="0.5")
    assert (done.suspended, done.exit_code) == (1, 0)
    assert sync.cursor() != pinned


def test_a_refused_bamboohr_key_stops_the_run_at_once(sync):
    first_run_pending(sync)
    summary = sync.run(BAMBOOHR_API_KEY="wrong")
    assert summary.status == "error" and summary.exit_code == 1
    assert "401" in summary.error
    assert len(sync.bamboo.requests) == 1 and sync.moodle.count() == 0
    assert sync.cursor() is not None and sync.cursor()["offset"] == 0


# -- Moodle outages and tokens ----------------------------------------------------------------


def test_a_moodle_outage_mid_run_pins_the_cursor_and_the_next_run_finishes(sync):
    staff(sync, 2)
    pinned = sync.cursor()
    new = [sync.bamboo.add_employee(f"N{i}", "New", f"n{i}@acme.example", at=ago(5 - i))
           for i in range(5)]  # fmt: skip
    # The feed: P1 again (at `since`, found by idnumber: 1 read), then 2 reads per new hire
    # (10); the site goes down after the first create.
    sync.moodle.outage("503", times=None, after_calls=1 + 10 + 1)
    sync.moodle.clear_log()

    failed = sync.run()

    assert failed.status == "error" and failed.created == 1
    assert "unreachable" in failed.error
    per_user = [e["employee_id"] for e in failed.errors if e["employee_id"]]
    assert per_user == new[1:4]  # three in a row, then it stops
    assert sync.moodle.count("core_user_create_users") == 1 + 3 * 3  # each tried 3 times
    assert sync.waits == [0.2, 0.4] * 3
    assert sync.cursor() == pinned

    sync.moodle.restore()
    done = sync.run()
    assert (done.created, done.unchanged, done.errors) == (4, 2, [])
    assert {u.idnumber for u in sync.moodle.users} >= set(new)
    assert sync.cursor()["since"] != pinned["since"]


def test_a_refused_connection_mid_run_pins_the_cursor(sync):
    first_run_pending(sync)
    sync.moodle.outage("refused", after_calls=6)
    failed = sync.run()
    assert failed.status == "error" and failed.created == 0
    assert sync.cursor()["offset"] == 0
    pinned = sync.cursor()
    sync.moodle.restore()
    done = sync.run()
    assert (done.created, done.errors) == (3, [])
    assert done.as_dict()["cursor_before"] == pinned


def test_an_invalid_token_stops_the_run_at_once(sync):
    first_run_pending(sync)
    summary = sync.run(MOODLE_WS_TOKEN="ffffffffffffffffffffffffffffffff")
    assert summary.status == "error" and summary.exit_code == 1
    assert "invalidtoken" in summary.error
    assert summary.errors == [{"employee_id": None, "error": summary.error}]
    assert sync.moodle.count() == 1
    assert summary.created == 0 and sync.runs()[-1].status == "error"


def test_a_token_without_the_user_functions_stops_at_once(sync):
    first_run_pending(sync)
    sync.moodle.disable_function("core_user_get_users")
    sync.moodle.disable_function("core_user_get_users_by_field")
    summary = sync.run()
    assert summary.status == "error" and "accessexception" in summary.error
    assert sync.moodle.count() == 2  # get_users refused, then its fallback refused


def test_lookups_fall_back_to_get_users_by_field(sync):
    ids = first_run_pending(sync)
    sync.moodle.disable_function("core_user_get_users")
    summary = sync.run()
    assert (summary.created, summary.errors) == (3, [])
    assert sync.moodle.count("core_user_get_users") == 1  # refused once, then never again
    assert sync.moodle.count("core_user_get_users_by_field") == 6
    assert {u.idnumber for u in sync.moodle.users} == set(ids)


def test_a_moodle_error_for_one_user_does_not_stop_the_others(sync):
    sync.bamboo.add_employee("Bad", "Email", "not-an-email", at=ago(3))
    good = sync.bamboo.add_employee("Good", "One", "good@acme.example", at=ago(2))
    summary = sync.run()
    assert summary.created == 1 and summary.exit_code == 1
    [error] = summary.errors
    assert "invalidparameter" in error["error"]
    assert sync.moodle.find_user(idnumber=good) is not None


# -- the suspension limit ------------------------------------------------------------------


def test_over_the_suspension_limit_nothing_is_written(sync, hr_appdb):
    ids = staff(sync, 10)
    with hr_appdb.transaction() as session:
        session.add(HrSyncConfig(id=SETTINGS_ROW, notify_emails="hr@acme.example"))
    pinned = sync.cursor()
    sync.bamboo.terminate(ids[0], at=ago(2))
    sync.bamboo.terminate(ids[1], at=ago(2))
    sync.bamboo.change_employee(ids[5], department="Would change", at=ago(1))
    writes = sync.writes()

    summary = sync.run()  # 2 of 10 active synced users is over the default 10%

    assert summary.status == "aborted" and summary.exit_code == 1
    assert "would suspend 2 of 10" in summary.error
    assert sync.writes() == writes
    assert not any(u.suspended for u in sync.moodle.users)
    assert sync.moodle.find_user(idnumber=ids[5]).department == ""
    assert sync.cursor() == pinned
    run = sync.runs()[-1]
    assert (run.status, run.error) == ("aborted", summary.error)
    with hr_appdb.transaction() as session:
        [job] = session.scalars(select(CloudJob).where(CloudJob.source == "hr_sync"))
        assert json.loads(job.payload)["failed"] is True
        emails = session.scalars(select(CloudRecipient.email).where(CloudRecipient.jobid == job.id))
        assert list(emails) == ["hr@acme.example"]

    # One suspension is within 10% of 10: that run goes through.
    sync.bamboo.rehire(ids[1], at=ago(0.5))
    summary = sync.run()
    assert (summary.suspended, summary.status) == (1, "ok")


def test_a_raised_limit_lets_the_run_through(sync):
    ids = staff(sync, 4)
    sync.bamboo.terminate(ids[0], at=ago(1))
    assert sync.run().status == "aborted"
    summary = sync.run(HR_SYNC_MAX_SUSPEND_SHARE="25%")
    assert (summary.suspended, summary.status) == (1, "ok")


# -- dry runs --------------------------------------------------------------------------------


def test_a_dry_run_writes_nothing_and_its_diff_is_exact(sync, hr_appdb):
    ids = staff(sync, 4)
    pinned = sync.cursor()
    users = {i: sync.moodle.find_user(idnumber=i) for i in ids}
    sync.bamboo.change_employee(ids[0], department="Sales", lastName="Smith", at=ago(3))
    sync.bamboo.terminate(ids[1], at=ago(2))
    hired = sync.bamboo.add_employee("New", "Hire", "New.Hire@acme.example", at=ago(1),
                                     department="Ops", location="York")  # fmt: skip
    writes, runs = sync.writes(), len(sync.runs())

    summary = sync.run(dry_run=True, HR_SYNC_MAX_SUSPEND_SHARE="0.5")

    out = summary.as_dict()
    assert out["dry_run"] is True and summary.exit_code == 0
    assert (out["created"], out["updated"], out["suspended"], out["unchanged"]) == (1, 1, 1, 1)
    assert out["diff"] == [
        {"employee_id": ids[0], "action": "update", "userid": users[ids[0]].id,
         "changes": {"lastname": {"old": "Person", "new": "Smith"},
                     "department": {"old": "", "new": "Sales"}}},
        {"employee_id": ids[1], "action": "suspend", "userid": users[ids[1]].id,
         "changes": {"suspended": {"old": 0, "new": 1}}},
        {"employee_id": hired, "action": "create", "userid": None,
         "changes": {"username": {"old": None, "new": "new.hire@acme.example"},
                     "email": {"old": None, "new": "New.Hire@acme.example"},
                     "idnumber": {"old": None, "new": hired},
                     "firstname": {"old": None, "new": "New"},
                     "lastname": {"old": None, "new": "Hire"},
                     "department": {"old": None, "new": "Ops"},
                     "institution": {"old": None, "new": "York"}}},
    ]  # fmt: skip
    assert out["cursor_after"]["offset"] == 0 and out["cursor_after"] != pinned
    # Nothing written: no Moodle writes, the cursor as it was, no audit entry.
    assert sync.writes() == writes
    assert sync.cursor() == pinned
    assert len(sync.audits()) == 1  # the first real run's
    run = sync.runs()[-1]
    assert len(sync.runs()) == runs + 1
    assert (run.dry_run, run.status) == (True, "ok")
    assert json.loads(run.diff_json) == out["diff"]
    assert "diff" not in json.loads(run.summary_json)
    with hr_appdb.transaction() as session:
        assert session.scalars(select(CloudJob)).all() == []  # a dry run mails only failures


def test_a_first_dry_run_leaves_no_cursor(sync):
    first_run_pending(sync)
    summary = sync.run(dry_run=True)
    assert summary.created == 3 and sync.moodle.users == []
    assert sync.cursor() is None


def test_web_services_switched_off_stop_the_run_at_once(sync):
    first_run_pending(sync)
    sync.moodle.rest_enabled = False
    summary = sync.run()
    assert summary.status == "error" and "wsdisabled" in summary.error
    assert sync.moodle.count() == 1 and sync.cursor()["offset"] == 0


def test_a_real_run_mails_its_summary_and_a_clean_dry_run_does_not(sync, hr_appdb):
    first_run_pending(sync)
    with hr_appdb.transaction() as session:
        session.add(HrSyncConfig(id=SETTINGS_ROW, notify_emails="hr@acme.example"))
    sync.run(dry_run=True)
    summary = sync.run()
    with hr_appdb.transaction() as session:
        [job] = session.scalars(select(CloudJob).where(CloudJob.source == "hr_sync"))
        mailed = json.loads(job.payload)
    assert mailed["failed"] is False
    assert {c["name"]: c["value"] for c in mailed["variables"]["counts"]}["created"] == (
        summary.created
    )


def test_a_moodle_url_without_a_web_service_stops_the_run_at_once(sync):
    first_run_pending(sync)
    summary = sync.run(MOODLE_WS_URL=sync.bamboo.base_url)  # answers 404 there
    assert summary.status == "error" and "HTTP 404: no web service" in summary.error
    assert "MOODLE_WS_URL" in summary.error and sync.waits == []


def test_a_real_run_stands_aside_while_another_is_going(sync, hr_appdb):
    first_run_pending(sync)
    # Another real run started a minute ago and is still going (the timetable's, say).
    with hr_appdb.transaction() as session:
        session.add(HrSyncRun(trigger="schedule", dry_run=False, status="running",
                              started_at=datetime.now(UTC) - timedelta(minutes=1)))  # fmt: skip
    busy = sync.run()
    assert busy.status == "error" and "is still going" in (busy.error or "")
    assert sync.writes() == 0 and busy.cursor_after == busy.cursor_before
    # A dry run may look meanwhile.
    assert sync.run(dry_run=True).status == "ok"
    # A run left `running` half an hour ago died with its process: no longer in the way.
    with hr_appdb.transaction() as session:
        session.execute(update(HrSyncRun).where(HrSyncRun.status == "running").values(
            started_at=datetime.now(UTC) - timedelta(minutes=31)))  # fmt: skip
    done = sync.run()
    assert done.status == "ok" and done.created == 3
