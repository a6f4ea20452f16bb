"""HR sync runs against the local BambooHR and Moodle REST servers: first, incremental and
batched runs, the cursor's rules, and a run that failed mid-batch resuming (SQLite, MariaDB)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.fakes.bamboohr_server import bamboo_timestamp

NOW = datetime.now(UTC).replace(microsecond=0)


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def hire(sync, first, last, email, hours, **fields):
    return sync.bamboo.add_employee(first, last, email, at=hours_ago(hours), **fields)


def test_first_run_creates_the_changed_employees_as_synced_users(sync):
    ada = hire(sync, "Ada", "Lovelace", "Ada.Lovelace@acme.example", 3, department="Research",
               division="Engines")  # fmt: skip
    bob = hire(sync, "Bob", "Builder", "bob@acme.example", 2, location="Leeds")
    # Changed before the 30-day look-back: not in this run's feed.
    hire(sync, "Old", "Timer", "old@acme.example", 24 * 40)

    summary = sync.run()

    out = summary.as_dict()
    assert (out["created"], out["updated"], out["unchanged"], out["skipped"]) == (2, 0, 0, 0)
    assert out["errors"] == [] and summary.exit_code == 0
    assert out["cursor_after"] == {"since": bamboo_timestamp(hours_ago(2)), "offset": 0}
    assert out["cursor_before"]["offset"] == 0
    first_since = datetime.fromisoformat(out["cursor_before"]["since"].replace("Z", "+00:00"))
    assert abs(first_since - (datetime.now(UTC) - timedelta(days=30))) < timedelta(minutes=2)
    users = {u.idnumber: u for u in sync.moodle.users}
    assert set(users) == {ada, bob}
    ada_user = users[ada]
    assert (ada_user.username, ada_user.email, ada_user.auth) == (
        "ada.lovelace@acme.example", "Ada.Lovelace@acme.example", "oidc")  # fmt: skip
    assert (ada_user.firstname, ada_user.lastname) == ("Ada", "Lovelace")
    assert (ada_user.department, ada_user.institution) == ("Research", "Engines")
    assert users[bob].institution == "Leeds"  # no division: the location
    assert not ada_user.suspended
    # A random password, never mailed: createpassword 0, a long one sent.
    creates = [c for c in sync.moodle.calls if c.wsfunction == "core_user_create_users"]
    sent = [c.params["users"][0] for c in creates]
    assert [s["createpassword"] for s in sent] == ["0", "0"]
    assert all(len(s["password"]) >= 24 for s in sent)
    assert sent[0]["password"] != sent[1]["password"]
    assert ada_user.password == "not cached"  # oidc: Moodle keeps no password
    assert sync.cursor() == out["cursor_after"]
    [run] = sync.runs()
    assert (run.trigger, run.status, run.dry_run, run.diff_json) == ("cli", "ok", False, None)
    assert json.loads(run.summary_json) == {k: v for k, v in out.items()}
    assert run.duration_ms is not None and run.finished_at is not None
    [audit] = sync.audits()
    assert audit["object_id"] == str(run.id) and audit["outcome"] == "success"
    assert audit["details"]["created"] == 2


def test_bamboohr_requests_are_json_with_the_key_as_basic_user(sync):
    hire(sync, "Ada", "Lovelace", "ada@acme.example", 1)
    sync.run()
    routes = [r.route for r in sync.bamboo.requests]
    assert routes[:2] == ["/v1/employees/changed", "/v1/employees/directory"]
    assert all(r.headers.get("Accept") == "application/json" for r in sync.bamboo.requests)
    assert all(r.status == 200 for r in sync.bamboo.requests)


def test_incremental_run_reads_changes_since_the_feeds_latest(sync):
    ada = hire(sync, "Ada", "Lovelace", "ada@acme.example", 3)
    hire(sync, "Bob", "Builder", "bob@acme.example", 2)
    carol = hire(sync, "Carol", "Singer", "carol@acme.example", 1)
    assert sync.run().created == 3
    cursor = sync.cursor()
    assert cursor == {"since": bamboo_timestamp(hours_ago(1)), "offset": 0}

    sync.bamboo.change_employee(ada, department="Sales", at=hours_ago(0.5))
    summary = sync.run()

    # The feed holds changes at or after `since`: Carol again (unchanged) and Ada.
    assert (summary.created, summary.updated, summary.unchanged) == (0, 1, 1)
    assert summary.as_dict()["cursor_before"] == cursor
    assert sync.cursor() == {"since": bamboo_timestamp(hours_ago(0.5)), "offset": 0}
    assert sync.moodle.find_user(idnumber=ada).department == "Sales"
    assert sync.moodle.find_user(idnumber=carol).department == ""
    update = [c for c in sync.moodle.calls if c.wsfunction == "core_user_update_users"]
    assert [c.params["users"] for c in update] == [
        [{"id": str(sync.moodle.find_user(idnumber=ada).id), "department": "Sales"}]
    ]


def test_batches_over_several_runs(sync):
    ids = [hire(sync, f"P{i}", "Person", f"p{i}@acme.example", 10 - i) for i in range(5)]
    first = sync.run(HR_SYNC_BATCH_SIZE="2")
    since = first.as_dict()["cursor_before"]["since"]
    assert first.created == 2 and sync.cursor() == {"since": since, "offset": 2}
    assert {u.idnumber for u in sync.moodle.users} == set(ids[:2])  # oldest change first

    second = sync.run(HR_SYNC_BATCH_SIZE="2")
    assert second.created == 2 and sync.cursor() == {"since": since, "offset": 4}

    third = sync.run(HR_SYNC_BATCH_SIZE="2")
    assert third.created == 1
    assert sync.cursor() == {"since": bamboo_timestamp(hours_ago(6)), "offset": 0}
    assert {u.idnumber for u in sync.moodle.users} == set(ids)


def test_a_run_that_failed_mid_batch_keeps_the_cursor_and_the_next_run_finishes(sync):
    ids = [hire(sync, f"P{i}", "Person", f"p{i}@acme.example", 10 - i) for i in range(6)]
    assert sync.run(HR_SYNC_BATCH_SIZE="3").created == 3
    pinned = sync.cursor()
    assert pinned["offset"] == 3
    # The next batch is P3, P4, P5: two reads each (idnumber, then email) are planned first,
    # then the creates; Moodle fails the second create (P4's).
    sync.moodle.outage("exception", times=1, after_calls=3 * 2 + 1,
                       error=("dml_write_exception", "dmlwriteexception",
                              "Error writing to database"))  # fmt: skip

    failed = sync.run(HR_SYNC_BATCH_SIZE="3")

    assert (failed.created, failed.exit_code) == (2, 1)
    assert failed.errors == [{"employee_id": ids[4], "error": failed.errors[0]["error"]}]
    assert "dmlwriteexception" in failed.errors[0]["error"]
    assert failed.as_dict()["cursor_after"] == pinned
    assert sync.cursor() == pinned
    assert sync.runs()[-1].status == "error"
    assert sync.audits()[-1]["outcome"] == "failed"
    assert sync.moodle.find_user(idnumber=ids[4]) is None

    resumed = sync.run(HR_SYNC_BATCH_SIZE="3")
    assert (resumed.created, resumed.unchanged, resumed.errors) == (1, 2, [])
    assert resumed.exit_code == 0
    assert sync.cursor() == {"since": bamboo_timestamp(hours_ago(5)), "offset": 0}
    assert {u.idnumber for u in sync.moodle.users} == set(ids)


def test_an_empty_feed_in_either_spelling_moves_since_to_latest(sync):
    for as_object in (False, True):
        sync.bamboo.empty_feed_as_object = as_object
        summary = sync.run()
        assert summary.exit_code == 0, summary.as_dict()
        assert summary.created + summary.updated + summary.unchanged == 0
        assert sync.cursor()["offset"] == 0
    assert [r.status for r in sync.runs()] == ["ok", "ok"]


def test_the_api_bamboohr_com_base_url_form_works_too(sync):
    hire(sync, "Ada", "Lovelace", "ada@acme.example", 1)
    summary = sync.run(BAMBOOHR_BASE_URL=sync.bamboo.api_url)
    assert summary.created == 1
    assert all(r.path.startswith("/api/v1/") for r in sync.bamboo.requests)
