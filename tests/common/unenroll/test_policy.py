"""The stored policy: defaults, a save checked field by field (every bad one named at once),
"20%" read as 0.20, single protected entries added and removed, each change audited."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.errors import FieldError
from common.models.access import AuditLog
from common.unenroll.policy import (
    SAVED_ACTION,
    Policy,
    add_protected,
    load_policy,
    remove_protected,
    save_policy,
)

GOOD = {
    "enabled": "1",
    "dry_run": "",
    "grace_days": "10",
    "max_remove_share": "20%",
    "sources": "moodle\ncanvas",
    "protected_domains": "Staff.Example\n@school.example",
    "protected_emails": "Boss@Example.com",
}


@pytest.fixture
def appdb(app_db_url):  # type: ignore[no-untyped-def]
    db = AppDB(app_db_url)
    yield db
    db.dispose()


def saved_events(appdb: AppDB) -> list[dict]:  # type: ignore[type-arg]
    with appdb.transaction() as s:
        rows = s.scalars(
            select(AuditLog).where(AuditLog.action == SAVED_ACTION).order_by(AuditLog.id)
        )
        return [json.loads(r.details or "{}") | {"_actor": r.userid} for r in rows]


def test_no_row_reads_as_off_and_dry_run(appdb):  # type: ignore[no-untyped-def]
    with appdb.transaction() as s:
        assert load_policy(s) == Policy()
    assert (Policy().enabled, Policy().dry_run, Policy().grace_days) == (False, True, 7)
    assert Policy().max_remove_share == 0.20


def test_a_good_save_is_stored_normalised_and_audited(appdb):  # type: ignore[no-untyped-def]
    with appdb.transaction() as s:
        changed = save_policy(s, GOOD, actor_id=2, ip="10.0.0.1")
    assert set(changed) >= {"enabled", "dry_run", "grace_days", "protected_domains"}
    with appdb.transaction() as s:
        policy = load_policy(s)
    assert (policy.enabled, policy.dry_run, policy.grace_days) == (True, False, 10)
    assert policy.max_remove_share == pytest.approx(0.20)
    assert policy.sources == ("moodle", "canvas")
    assert policy.protected_domains == ("staff.example", "school.example")
    assert policy.protected_emails == ("boss@example.com",)
    assert policy.modifiedby == 2
    [event] = saved_events(appdb)
    assert event["_actor"] == 2 and event["changed"]["grace_days"] == [7, 10]
    with appdb.transaction() as s:  # the same again: nothing changed, nothing audited
        assert save_policy(s, GOOD, actor_id=2) == {}
    assert len(saved_events(appdb)) == 1


def test_every_bad_field_is_named_at_once_and_nothing_is_stored(appdb):  # type: ignore[no-untyped-def]
    bad = {
        **GOOD,
        "grace_days": "3651",
        "max_remove_share": "120%",
        "sources": "Not A Name!",
        "protected_domains": "ok.example\nbad_domain",
        "protected_emails": "x@y.example\nnope",
    }
    with appdb.transaction() as s, pytest.raises(FieldError) as raised:
        save_policy(s, bad, actor_id=2)
    fields = {e.field: e.reason for e in raised.value.errors}
    assert set(fields) == {
        "grace_days",
        "max_remove_share",
        "sources",
        "protected_domains",
        "protected_emails",
    }
    assert "line 2" in fields["protected_domains"] and "line 2" in fields["protected_emails"]
    assert "3651" in fields["grace_days"]
    with appdb.transaction() as s:
        assert load_policy(s) == Policy()
    assert saved_events(appdb) == []


@pytest.mark.parametrize(
    ("raw", "share"), [("0.2", 0.2), ("20%", 0.2), ("0", 0.0), ("1", 1.0), ("100 %", 1.0)]
)
def test_shares_as_fractions_or_percentages(appdb, raw, share):  # type: ignore[no-untyped-def]
    with appdb.transaction() as s:
        save_policy(s, {**GOOD, "max_remove_share": raw}, actor_id=None)
        assert load_policy(s).max_remove_share == pytest.approx(share)


@pytest.mark.parametrize("raw", ["-1", "x", "", "1.5", "nan"])
def test_bad_grace_days_and_shares(appdb, raw):  # type: ignore[no-untyped-def]
    for field in ("grace_days", "max_remove_share"):
        with appdb.transaction() as s, pytest.raises(FieldError) as raised:
            save_policy(s, {**GOOD, field: raw}, actor_id=None)
        assert [e.field for e in raised.value.errors] == [field]


def test_single_protected_entries_are_added_and_removed(appdb):  # type: ignore[no-untyped-def]
    with appdb.transaction() as s:
        assert add_protected(s, "domain", "Example.ORG", actor_id=2)
        assert not add_protected(s, "domain", "example.org", actor_id=2)  # listed already
        assert add_protected(s, "email", "Head@Example.com", actor_id=2)
    with appdb.transaction() as s:
        policy = load_policy(s)
        assert policy.protected_domains == ("example.org",)
        assert policy.protected_emails == ("head@example.com",)
        assert remove_protected(s, "email", "HEAD@example.com", actor_id=2)
        assert not remove_protected(s, "email", "head@example.com", actor_id=2)
        assert load_policy(s).protected_emails == ()
    assert len(saved_events(appdb)) == 3
    with appdb.transaction() as s:
        for kind, value in (("domain", "not a domain"), ("email", "nope"), ("email", "")):
            with pytest.raises(FieldError) as raised:
                add_protected(s, kind, value, actor_id=2)
            assert raised.value.field == f"protected_{kind}s"
            assert not raised.value.reason.startswith("line")  # one entry: no line number
        with pytest.raises(FieldError):
            add_protected(s, "phone", "x", actor_id=2)


def test_protection_is_case_insensitive():  # type: ignore[no-untyped-def]
    policy = Policy(protected_domains=("staff.example",), protected_emails=("boss@x.example",))
    assert policy.protection("Stan@STAFF.example") == "protected domain staff.example"
    assert policy.protection("BOSS@x.Example") == "protected email boss@x.example"
    assert policy.protection("someone@x.example") is None
