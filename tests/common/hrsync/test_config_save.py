"""Checking and saving the HR sync settings: every bad field named at once, nothing written
then; secrets write-only and never sent somewhere new; environment variables win; the SSRF
rule of the mailers; audited without secrets. On SQLite and MariaDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.errors import FieldError
from common.hrsync.config_save import (
    PRIVATE_REFUSED,
    bamboohr_url_problem,
    form_values,
    moodle_url_problem,
    save_hr_config,
    secret_masks,
)
from common.hrsync.settings import load_hr_settings
from common.models.access import AuditLog
from common.models.hrsync import SETTINGS_ROW, HrSyncConfig
from common.secrets import decrypt
from tests.support import TEST_SECRET, make_settings

KEY = "bamboo-key-0123456789abcdef"
TOKEN = "moodle-token-fedcba9876543210"
GOOD: dict[str, str] = {
    "bamboohr_base_url": "https://api.bamboohr.com/api/gateway.php/acme",
    "bamboohr_api_key": KEY,
    "moodle_ws_url": "https://lms.example.com/",
    "moodle_ws_token": TOKEN,
    "batch_size": "500",
    "lookback_days": "14",
    "cron": "0 6 * * mon-fri",
    "tz": "Europe/London",
    "map_username": "workEmail",
    "map_idnumber": "employeeNumber",
    "map_institution": "division | location",
    "map_profile": "costcentre = customCostCentre\n\nmanager = supervisorEmail",
    "auth": "oidc",
    "max_suspend_share": "5%",
    "notify_emails": "hr@example.com\n\nops@example.com\nHR@example.com",
}


@pytest.fixture
def appdb(app_db_url: str) -> Iterator[AppDB]:
    db = AppDB(app_db_url)
    yield db
    db.dispose()


def save(appdb: AppDB, values: dict[str, str], env: dict[str, str] | None = None) -> Any:
    with appdb.transaction() as session:
        saved = save_hr_config(session, values, secret_key=TEST_SECRET, actor_id=2, ip="10.0.0.9",
                               env=env or {})  # fmt: skip
        return saved.changed


def stored(appdb: AppDB) -> HrSyncConfig | None:
    with appdb.transaction() as session:
        row = session.get(HrSyncConfig, SETTINGS_ROW)
        if row is not None:
            session.expunge(row)
    return row


def problems(appdb: AppDB, values: dict[str, str], env: dict[str, str] | None = None):
    with pytest.raises(FieldError) as caught:
        save(appdb, values, env)
    return {e.field: e.reason for e in caught.value.errors}


def audits(appdb: AppDB) -> list[AuditLog]:
    with appdb.transaction() as session:
        found = list(session.scalars(select(AuditLog).where(
            AuditLog.action == "hr_sync_settings_saved").order_by(AuditLog.id)))  # fmt: skip
        session.expunge_all()
    return found


def test_a_good_form_is_stored_and_the_engine_reads_it_back(appdb, tmp_path):
    changed = save(appdb, GOOD)
    row = stored(appdb)
    assert row is not None
    assert (row.bamboohr_base_url, row.moodle_ws_url) == (
        "https://api.bamboohr.com/api/gateway.php/acme", "https://lms.example.com")  # fmt: skip
    assert (row.batch_size, row.lookback_days, row.cron, row.tz, row.auth) == (
        500, 14, "0 6 * * mon-fri", "Europe/London", "oidc")  # fmt: skip
    assert row.max_suspend_share == pytest.approx(0.05)
    assert row.notify_emails == "hr@example.com\nops@example.com"
    assert json.loads(row.mapping_json) == {
        "username": "workEmail", "idnumber": "employeeNumber", "institution": "division|location",
        "profile": {"costcentre": "customCostCentre", "manager": "supervisorEmail"}}  # fmt: skip
    assert json.loads(decrypt(row.secrets, TEST_SECRET)) == {
        "bamboohr_api_key": KEY, "moodle_ws_token": TOKEN}  # fmt: skip
    assert KEY not in row.secrets
    assert "bamboohr_api_key" in changed and "cron" in changed
    # The engine's loader reads what the page stored.
    hr = load_hr_settings(appdb, make_settings(tmp_path), env={})
    assert (hr.bamboohr_api_key, hr.moodle_ws_token, hr.batch_size) == (KEY, TOKEN, 500)
    assert hr.mapping["idnumber"] == "employeeNumber" and hr.mapping["email"] == "workEmail"
    assert hr.mapping["profile"] == {"costcentre": "customCostCentre", "manager": "supervisorEmail"}


def test_the_other_url_form_and_no_schedule_are_accepted(appdb):
    save(appdb, {**GOOD, "bamboohr_base_url": "https://acme.bamboohr.com/api/", "cron": "",
                 "max_suspend_share": "", "auth": ""})  # fmt: skip
    row = stored(appdb)
    assert row is not None
    assert (row.bamboohr_base_url, row.cron, row.auth) == (
        "https://acme.bamboohr.com/api", "", "oidc")  # fmt: skip
    assert row.max_suspend_share == pytest.approx(0.10)


def test_every_bad_field_is_named_at_once_and_nothing_is_written(appdb):
    bad = {
        "bamboohr_base_url": "https://example.com/bamboo",
        "bamboohr_api_key": "has space",
        "moodle_ws_url": "https://lms.example.com/webservice/rest/server.php",
        "moodle_ws_token": TOKEN,
        "batch_size": "-1",
        "lookback_days": "0",
        "cron": "0 25 * * *",
        "tz": "Europe/Atlantis",
        "map_email": "work email",
        "map_profile": "costcentre = customCostCentre\nno equals sign\ncostcentre = other",
        "auth": "nologin",
        "max_suspend_share": "1.5",
        "notify_emails": "hr@example.com\nnot-an-address",
    }
    found = problems(appdb, bad)
    assert set(found) == {"bamboohr_base_url", "bamboohr_api_key", "moodle_ws_url", "batch_size",
                          "lookback_days", "cron", "tz", "map_email", "map_profile", "auth",
                          "max_suspend_share", "notify_emails"}  # fmt: skip
    assert "line 2" in found["map_profile"] and "line 3: costcentre is mapped twice" in found[
        "map_profile"]  # fmt: skip
    assert "line 2: 'not-an-address'" in found["notify_emails"]
    assert "from 1 to 3,650" in found["lookback_days"]
    assert stored(appdb) is None and audits(appdb) == []


def test_lookback_days_bounds(appdb):
    assert "lookback_days" in problems(appdb, {**GOOD, "lookback_days": "3651"})
    assert "lookback_days" in problems(appdb, {**GOOD, "lookback_days": "1.5"})
    save(appdb, {**GOOD, "lookback_days": "3650", "batch_size": "0"})
    row = stored(appdb)
    assert row is not None and (row.lookback_days, row.batch_size) == (3650, 0)


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/api/gateway.php/acme", "https://localhost/api/gateway.php/acme",
    "https://10.1.2.3/api/gateway.php/acme", "https://169.254.169.254/api/gateway.php/acme",
    "https://[::1]/api/gateway.php/acme", "https://[::ffff:192.168.0.1]/api/gateway.php/acme",
    "https://metadata.localhost/api/gateway.php/acme",
])  # fmt: skip
def test_private_and_local_hosts_are_refused_unless_the_site_allows_them(url):
    assert bamboohr_url_problem(url, allow_private=False) == PRIVATE_REFUSED
    assert bamboohr_url_problem(url, allow_private=True) is None
    moodle = url.replace("/api/gateway.php/acme", "/moodle")
    assert moodle_url_problem(moodle, allow_private=False) == PRIVATE_REFUSED


def test_http_only_to_loopback_and_only_when_allowed():
    fake = "http://127.0.0.1:8123/api/gateway.php/acme"
    assert bamboohr_url_problem(fake, allow_private=False) == PRIVATE_REFUSED
    assert bamboohr_url_problem(fake, allow_private=True) is None
    for plain in (
        "http://10.0.0.5/api/gateway.php/acme",
        "http://api.bamboohr.com/api/gateway.php/acme",
    ):
        assert "must be https://" in str(bamboohr_url_problem(plain, allow_private=True))
    assert moodle_url_problem("http://localhost:8080", allow_private=True) is None


@pytest.mark.parametrize("url", [
    "ftp://api.bamboohr.com/api/gateway.php/acme",
    "https://user:pw@api.bamboohr.com/api/gateway.php/acme",
    "https://api.bamboohr.com/api/gateway.php/acme?x=1",
    "https://api.bamboohr.com/api/gateway.php/acme/v1",
    "https://api.bamboohr.com/api/gateway.php/",
    "https://evil.example.com/api",
    "https://api.bamboohr.com:99999/api/gateway.php/acme",
    "https://api.bamboohr.com/api/gateway.php/ac me",
])  # fmt: skip
def test_malformed_bamboohr_urls(url):
    assert bamboohr_url_problem(url, allow_private=False)


def test_the_site_setting_allows_the_local_fakes(appdb):
    local = {**GOOD, "bamboohr_base_url": "http://127.0.0.1:8123/api/gateway.php/acme",
             "moodle_ws_url": "http://127.0.0.1:8124"}  # fmt: skip
    assert set(problems(appdb, local)) == {"bamboohr_base_url", "moodle_ws_url"}
    save(appdb, local, env={"HR_SYNC_ALLOW_PRIVATE_HOSTS": "1"})
    row = stored(appdb)
    assert row is not None and row.moodle_ws_url == "http://127.0.0.1:8124"


def test_a_blank_secret_keeps_the_stored_one(appdb):
    save(appdb, GOOD)
    save(appdb, {**GOOD, "bamboohr_api_key": "", "moodle_ws_token": "", "batch_size": "7"})
    row = stored(appdb)
    assert row is not None and row.batch_size == 7
    assert json.loads(decrypt(row.secrets, TEST_SECRET)) == {
        "bamboohr_api_key": KEY, "moodle_ws_token": TOKEN}  # fmt: skip
    last = audits(appdb)[-1]
    assert json.loads(last.details)["secrets_changed"] == []
    assert json.loads(last.details)["changed"] == ["batch_size"]


def test_a_new_url_needs_its_secret_entered_again(appdb):
    save(appdb, GOOD)
    moved = {**GOOD, "bamboohr_api_key": "", "moodle_ws_token": "",
             "bamboohr_base_url": "https://other.bamboohr.com/api"}  # fmt: skip
    found = problems(appdb, moved)
    assert set(found) == {"bamboohr_api_key"}
    assert found["bamboohr_api_key"].startswith("enter it again: the BambooHR base URL changed")
    save(appdb, {**moved, "bamboohr_api_key": "new-key-000000000000"})
    row = stored(appdb)
    assert row is not None
    assert json.loads(decrypt(row.secrets, TEST_SECRET))["bamboohr_api_key"] == (
        "new-key-000000000000")  # fmt: skip


def test_secrets_unreadable_under_a_new_secret_key_must_be_entered_again(appdb):
    save(appdb, GOOD)
    with appdb.transaction() as session:
        with pytest.raises(FieldError) as caught:
            blank = {**GOOD, "bamboohr_api_key": "", "moodle_ws_token": ""}
            save_hr_config(session, blank, secret_key="another-secret-key", actor_id=2, env={})
    assert {e.field for e in caught.value.errors} == {"bamboohr_api_key", "moodle_ws_token"}
    row = stored(appdb)
    assert secret_masks(row, "another-secret-key")["bamboohr_api_key"].startswith(
        "stored, but unreadable")  # fmt: skip


def test_fields_the_environment_sets_are_not_taken_from_the_form(appdb):
    save(appdb, GOOD)
    env = {"BAMBOOHR_BASE_URL": "https://env.bamboohr.com/api", "BAMBOOHR_API_KEY": "env-key",
           "HR_SYNC_BATCH_SIZE": "9"}  # fmt: skip
    # Whatever the form says for them (even nonsense) is ignored; the stored value stays.
    save(appdb, {**GOOD, "bamboohr_base_url": "junk", "bamboohr_api_key": "", "batch_size": "x",
                 "moodle_ws_token": ""}, env=env)  # fmt: skip
    row = stored(appdb)
    assert row is not None
    assert (row.bamboohr_base_url, row.batch_size) == (GOOD["bamboohr_base_url"], 500)
    assert json.loads(decrypt(row.secrets, TEST_SECRET))["bamboohr_api_key"] == KEY
    assert json.loads(audits(appdb)[-1].details)["set_by_environment"] == [
        "bamboohr_api_key", "bamboohr_base_url", "batch_size"]  # fmt: skip


def test_the_audit_never_holds_a_secret(appdb):
    save(appdb, GOOD)
    save(appdb, {**GOOD, "bamboohr_api_key": "rotated-key-123456789", "moodle_ws_token": ""})
    entries = audits(appdb)
    assert len(entries) == 2
    assert (entries[0].userid, entries[0].ip, entries[0].object_type) == (
        2, "10.0.0.9", "hr_sync_config")  # fmt: skip
    assert json.loads(entries[1].details)["secrets_changed"] == ["bamboohr_api_key"]
    for entry in entries:
        for secret in (KEY, TOKEN, "rotated-key-123456789", "rotated", "0123456789abcdef"):
            assert secret not in entry.details


def test_the_form_shows_stored_values_and_masks_secrets_only(appdb):
    assert form_values(None)["lookback_days"] == "30"
    save(appdb, GOOD)
    row = stored(appdb)
    values = form_values(row)
    assert values["bamboohr_api_key"] == "" and values["moodle_ws_token"] == ""
    assert values["map_profile"] == "costcentre = customCostCentre\nmanager = supervisorEmail"
    assert (values["map_idnumber"], values["map_email"], values["max_suspend_share"]) == (
        "employeeNumber", "", "0.05")  # fmt: skip
    masks = secret_masks(row, TEST_SECRET)
    assert masks == {"bamboohr_api_key": "••••cdef", "moodle_ws_token": "••••3210"}
    # Saving the form as shown changes nothing.
    assert save(appdb, form_values(row)) == []


def test_hr_sync_notify_in_the_environment_wins_over_the_addresses_field(appdb):
    save(appdb, GOOD)
    save(appdb, {**GOOD, "notify_emails": "not an address", "bamboohr_api_key": ""},
         env={"HR_SYNC_NOTIFY": "ops@example.com"})  # fmt: skip
    row = stored(appdb)
    assert row is not None and row.notify_emails == "hr@example.com\nops@example.com"
    assert json.loads(audits(appdb)[-1].details)["set_by_environment"] == ["notify_emails"]
