"""What an HR sync run does to each person's Moodle account: terminations suspend, rehires
unsuspend, a changed email is found by idnumber, and accounts the sync does not own (a hand-made
user, another employee's) are reported as skipped, never merged (SQLite, MariaDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOW = datetime.now(UTC).replace(microsecond=0)
LENIENT = {"HR_SYNC_MAX_SUSPEND_SHARE": "0.5"}  # a few people: one suspension is over 10%


def ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def staff(sync, count=3):
    """``count`` employees, synced once; their ids."""
    ids = [sync.bamboo.add_employee(f"P{i}", "Person", f"p{i}@acme.example", at=ago(10 - i))
           for i in range(count)]  # fmt: skip
    assert sync.run().created == count
    return ids


def test_a_termination_dated_today_suspends_the_account(sync):
    ids = staff(sync)
    sync.bamboo.terminate(ids[1], at=ago(1))
    sync.bamboo.clear_log()

    summary = sync.run(**LENIENT)

    assert (summary.suspended, summary.errors) == (1, [])
    assert sync.moodle.find_user(idnumber=ids[1]).suspended
    assert not sync.moodle.find_user(idnumber=ids[0]).suspended
    # The directory no longer lists them: their status was read.
    [read] = [r for r in sync.bamboo.requests if r.route == f"/v1/employees/{ids[1]}"]
    asked = read.query["fields"].split(",")
    assert {"status", "employmentHistoryStatus", "terminationDate", "workEmail"} <= set(asked)
    assert "id" not in asked
    update = [c.params for c in sync.moodle.calls if c.wsfunction == "core_user_update_users"]
    assert update == [{"users": [{"id": str(sync.moodle.find_user(idnumber=ids[1]).id),
                                  "suspended": "1"}]}]  # fmt: skip


def test_a_termination_dated_in_the_future_leaves_the_account_alone(sync):
    ids = staff(sync)
    sync.bamboo.terminate(ids[1], on=(NOW + timedelta(days=14)).date(), at=ago(1))
    summary = sync.run(**LENIENT)
    assert (summary.suspended, summary.errors) == (0, [])
    assert not sync.moodle.find_user(idnumber=ids[1]).suspended


def test_a_deleted_employee_is_suspended(sync):
    ids = staff(sync)
    sync.bamboo.delete_employee(ids[2], at=ago(1))
    summary = sync.run(**LENIENT)
    assert (summary.suspended, summary.errors) == (1, [])
    assert sync.moodle.find_user(idnumber=ids[2]).suspended


def test_a_rehire_unsuspends_the_account(sync):
    ids = staff(sync)
    sync.bamboo.terminate(ids[0], at=ago(2))
    assert sync.run(**LENIENT).suspended == 1
    sync.bamboo.rehire(ids[0], at=ago(1))
    sync.bamboo.change_employee(ids[0], department="Returns", at=ago(1))

    summary = sync.run(**LENIENT)

    assert (summary.unsuspended, summary.suspended, summary.errors) == (1, 0, [])
    user = sync.moodle.find_user(idnumber=ids[0])
    assert not user.suspended and user.department == "Returns"


def test_a_changed_email_is_found_by_idnumber_and_updated(sync):
    ids = staff(sync)
    before = sync.moodle.find_user(idnumber=ids[0])
    sync.bamboo.change_employee(ids[0], workEmail="P0.Married@acme.example", lastName="Wed",
                                at=ago(1))  # fmt: skip

    summary = sync.run()

    assert (summary.created, summary.updated, summary.errors) == (0, 1, [])
    after = sync.moodle.find_user(idnumber=ids[0])
    assert after.id == before.id
    assert (after.email, after.username, after.lastname) == (
        "P0.Married@acme.example", "p0.married@acme.example", "Wed")  # fmt: skip
    assert len(sync.moodle.users) == 3


def test_two_employees_with_the_same_email_are_reported_not_merged(sync):
    ann = sync.bamboo.add_employee("Ann", "One", "shared@acme.example", at=ago(2))
    amy = sync.bamboo.add_employee("Amy", "Two", "shared@acme.example", at=ago(1))
    sync.bamboo.add_employee("Sam", "Solo", "solo@acme.example", at=ago(1))

    summary = sync.run(dry_run=True)
    reasons = {d["employee_id"]: d["reason"] for d in summary.diff if d["action"] == "skip"}
    assert set(reasons) == {ann, amy}
    assert amy in reasons[ann] and ann in reasons[amy] and "not merged" in reasons[ann]

    summary = sync.run()

    assert (summary.created, summary.skipped, summary.errors) == (1, 2, [])
    assert sync.moodle.find_user(email="shared@acme.example") is None
    assert [u.email for u in sync.moodle.users] == ["solo@acme.example"]


def test_a_hand_made_moodle_user_with_the_same_email_is_left_alone(sync):
    hand = sync.moodle.add_user("jdoe", "jane.doe@acme.example", "Jane", "Hand")
    sync.bamboo.add_employee("Jane", "Doe", "jane.doe@acme.example", at=ago(1))

    summary = sync.run()

    assert (summary.created, summary.updated, summary.skipped) == (0, 0, 1)
    assert summary.errors == [] and summary.exit_code == 0
    user = sync.moodle.user(hand)
    assert (user.auth, user.idnumber, user.lastname) == ("manual", "", "Hand")
    assert user.username == "jdoe"
    assert sync.writes() == 0
    assert summary.skipped_detail[0]["userid"] == hand
    assert "left alone" in summary.skipped_detail[0]["reason"]


def test_a_user_of_another_auth_holding_the_idnumber_is_left_alone(sync):
    employee = sync.bamboo.add_employee("Kim", "Lee", "kim@acme.example", at=ago(1))
    other = sync.moodle.add_user("student42", "s42@school.example", auth="manual",
                                 idnumber=employee)  # fmt: skip
    summary = sync.run()
    assert (summary.created, summary.updated, summary.skipped) == (0, 0, 1)
    assert sync.moodle.user(other).email == "s42@school.example"
    assert sync.writes() == 0


def test_a_synced_account_made_before_its_idnumber_is_adopted(sync):
    early = sync.moodle.add_user("kim@acme.example", "kim@acme.example", "Kim", "Lee",
                                 auth="oidc")  # fmt: skip
    employee = sync.bamboo.add_employee("Kim", "Lee", "kim@acme.example", at=ago(1))
    summary = sync.run()
    assert (summary.created, summary.updated) == (0, 1)
    assert sync.moodle.user(early).idnumber == employee


def test_a_termination_of_someone_without_an_account_changes_nothing(sync):
    ids = staff(sync)
    never = sync.bamboo.add_employee("Never", "Synced", "never@acme.example", at=ago(1.5))
    sync.bamboo.terminate(never, at=ago(1))
    summary = sync.run(**LENIENT)
    assert (summary.suspended, summary.created, summary.errors) == (0, 0, [])
    assert len(sync.moodle.users) == len(ids)


def test_custom_profile_fields_through_the_mapping(sync, hr_appdb):
    from common.models.hrsync import SETTINGS_ROW, HrSyncConfig

    with hr_appdb.transaction() as session:
        mapping = '{"profile": {"employeeid": "employeeNumber"}}'
        session.add(HrSyncConfig(id=SETTINGS_ROW, mapping_json=mapping))
    employee = sync.bamboo.add_employee("Ada", "L", "ada@acme.example", at=ago(2),
                                        employeeNumber="E-7")  # fmt: skip
    assert sync.run().created == 1
    assert sync.moodle.find_user(idnumber=employee).profile == {"employeeid": "E-7"}
    sync.bamboo.change_employee(employee, employeeNumber="E-8", at=ago(1))
    summary = sync.run()
    assert (summary.updated, summary.errors) == (1, [])
    assert sync.moodle.find_user(idnumber=employee).profile == {"employeeid": "E-8"}
