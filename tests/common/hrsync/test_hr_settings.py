"""HR sync settings: the stored row with its secrets decrypted, environment variables winning,
every bad value named (SQLite, MariaDB)."""

from __future__ import annotations

import json

import pytest

from common.hrsync.mapping import bamboohr_fields, moodle_fields
from common.hrsync.settings import (
    DEFAULT_MAPPING,
    HrSyncSettings,
    load_hr_settings,
    parse_mapping,
    which_from_env,
)
from common.models.hrsync import SETTINGS_ROW, HrSyncConfig
from common.secrets import encrypt
from common.settings import SettingsError
from tests.support import make_settings


def store(appdb, settings, **values):
    secrets = values.pop("secrets", None)
    with appdb.transaction() as session:
        row = HrSyncConfig(id=SETTINGS_ROW, **values)
        if secrets is not None:
            row.secrets = encrypt(json.dumps(secrets), settings.secret_key)
        session.merge(row)


STORED = {
    "bamboohr_base_url": "https://api.bamboohr.com/api/gateway.php/acme/",
    "moodle_ws_url": "https://moodle.acme.example",
    "secrets": {"bamboohr_api_key": "stored-key", "moodle_ws_token": "stored-token"},
    "batch_size": 200,
    "lookback_days": 7,
    "cron": "0 2 * * *",
    "tz": "Europe/London",
    "auth": "saml2",
    "max_suspend_share": 0.05,
    "notify_emails": "hr@acme.example\n\nops@acme.example\n",
    "mapping_json": json.dumps({"idnumber": "employeeNumber", "profile": {"team": "jobTitle"}}),
}


def test_stored_values_with_secrets_decrypted(hr_appdb, hr_settings):
    store(hr_appdb, hr_settings, **STORED)
    hr = load_hr_settings(hr_appdb, hr_settings, env={})
    assert hr.bamboohr_base_url == "https://api.bamboohr.com/api/gateway.php/acme"
    assert (hr.bamboohr_api_key, hr.moodle_ws_token) == ("stored-key", "stored-token")
    assert (hr.moodle_ws_url, hr.batch_size, hr.lookback_days) == (
        "https://moodle.acme.example", 200, 7)  # fmt: skip
    assert (hr.cron, hr.tz, hr.auth, hr.max_suspend_share) == (
        "0 2 * * *", "Europe/London", "saml2", 0.05)  # fmt: skip
    assert hr.notify_emails == ("hr@acme.example", "ops@acme.example")
    assert hr.mapping["idnumber"] == "employeeNumber"
    assert hr.mapping["email"] == "workEmail"  # the default for keys not stored
    assert hr.mapping["profile"] == {"team": "jobTitle"}
    assert "stored-key" not in repr(hr) and "stored-token" not in repr(hr)


def test_environment_variables_win_over_stored_values(hr_appdb, hr_settings):
    store(hr_appdb, hr_settings, **STORED)
    env = {
        "BAMBOOHR_BASE_URL": "https://acme.bamboohr.com/api",
        "BAMBOOHR_API_KEY": "env-key",
        "MOODLE_WS_URL": "http://127.0.0.1:9999/moodle/",
        "MOODLE_WS_TOKEN": "env-token",
        "HR_SYNC_BATCH_SIZE": "0",
        "HR_SYNC_LOOKBACK_DAYS": "90",
        "HR_SYNC_MAX_SUSPEND_SHARE": "20%",
        "HR_SYNC_AUTH": "oidc",
        "HR_SYNC_ALLOW_PRIVATE_HOSTS": "1",  # the Moodle URL is on loopback
    }
    hr = load_hr_settings(hr_appdb, hr_settings, env=env)
    assert hr.bamboohr_base_url == "https://acme.bamboohr.com/api"
    assert (hr.bamboohr_api_key, hr.moodle_ws_token) == ("env-key", "env-token")
    assert hr.moodle_ws_url == "http://127.0.0.1:9999/moodle"
    assert (hr.batch_size, hr.lookback_days, hr.max_suspend_share, hr.auth) == (0, 90, 0.2, "oidc")
    assert hr.cron == "0 2 * * *"  # no variable for it: stored
    assert which_from_env(env) == {
        "bamboohr_base_url", "bamboohr_api_key", "moodle_ws_url", "moodle_ws_token",
        "batch_size", "lookback_days", "max_suspend_share", "auth"}  # fmt: skip
    assert which_from_env({"HR_SYNC_AUTH": "  ", "BAMBOOHR_API_KEY": "k"}) == {"bamboohr_api_key"}


def test_a_run_may_not_call_private_or_plain_http_addresses(hr_appdb, hr_settings):
    env = {"BAMBOOHR_BASE_URL": "https://acme.bamboohr.com/api", "BAMBOOHR_API_KEY": "k",
           "MOODLE_WS_URL": "http://127.0.0.1:9999/moodle", "MOODLE_WS_TOKEN": "t"}  # fmt: skip
    with pytest.raises(SettingsError, match=r"^MOODLE_WS_URL: a private or local address"):
        load_hr_settings(hr_appdb, hr_settings, env=env)
    for url in ("http://169.254.169.254/latest", "https://10.0.0.5", "https://[::1]:8443"):
        refused = {**env, "BAMBOOHR_BASE_URL": url, "HR_SYNC_ALLOW_PRIVATE_HOSTS": "0"}
        with pytest.raises(SettingsError, match=r"^BAMBOOHR_BASE_URL: "):
            load_hr_settings(hr_appdb, hr_settings, env=refused)
    # Allowed for loopback test doubles only when the site says so.
    allowed = load_hr_settings(hr_appdb, hr_settings,
                               env={**env, "HR_SYNC_ALLOW_PRIVATE_HOSTS": "1"})  # fmt: skip
    assert allowed.moodle_ws_url == "http://127.0.0.1:9999/moodle"


def test_nothing_stored_gives_the_defaults(hr_appdb, hr_settings):
    hr = load_hr_settings(hr_appdb, hr_settings, env={})
    assert hr == HrSyncSettings()
    assert (hr.auth, hr.max_suspend_share, hr.lookback_days, hr.batch_size) == (
        "oidc", 0.10, 30, 0)  # fmt: skip
    assert hr.mapping == DEFAULT_MAPPING
    with pytest.raises(SettingsError, match=r"^BAMBOOHR_BASE_URL: not set .*also missing: "
                       "BAMBOOHR_API_KEY, MOODLE_WS_URL, MOODLE_WS_TOKEN$"):  # fmt: skip
        hr.require_connection()


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("BAMBOOHR_BASE_URL", "ftp://acme", "is not an http:// or https:// URL"),
        ("MOODLE_WS_URL", "moodle.acme.example", "is not an http:// or https:// URL"),
        ("HR_SYNC_BATCH_SIZE", "ten", "is not a whole number"),
        ("HR_SYNC_BATCH_SIZE", "-1", "is outside 0..1000000"),
        ("HR_SYNC_LOOKBACK_DAYS", "1.5", "is not a whole number"),
        ("HR_SYNC_MAX_SUSPEND_SHARE", "lots", "is not a number"),
        ("HR_SYNC_MAX_SUSPEND_SHARE", "1.5", "is outside 0..1"),
        ("HR_SYNC_MAX_SUSPEND_SHARE", "nan", "is outside 0..1"),
        ("HR_SYNC_AUTH", "Bad Auth", "is not a Moodle auth plugin name"),
        ("HR_SYNC_AUTH", "webservice", "Moodle cannot create users with auth"),
    ],
)
def test_a_bad_variable_is_named(hr_appdb, hr_settings, variable, value, reason):
    with pytest.raises(SettingsError) as raised:
        load_hr_settings(hr_appdb, hr_settings, env={variable: value})
    assert str(raised.value).startswith(f"{variable}: ")
    assert reason in str(raised.value)


def test_secrets_this_secret_key_cannot_read_are_named(hr_appdb, hr_settings, tmp_path):
    store(hr_appdb, hr_settings, **STORED)
    rotated = make_settings(tmp_path / "rotated", DATABASE_URL="sqlite://",
                            SECRET_KEY="another-secret-key-" + "y" * 32)  # fmt: skip
    with pytest.raises(SettingsError, match="^secrets: .*cannot be decrypted"):
        load_hr_settings(hr_appdb, rotated, env={})
    # Both secrets from the environment: the stored ones are not needed.
    hr = load_hr_settings(hr_appdb, rotated,
                          env={"BAMBOOHR_API_KEY": "k", "MOODLE_WS_TOKEN": "t"})  # fmt: skip
    assert (hr.bamboohr_api_key, hr.moodle_ws_token) == ("k", "t")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("[1]", "mapping: not a JSON object"),
        ("{", "mapping: not a JSON object"),
        ('{"nickname": "x"}', "unknown Moodle field 'nickname'"),
        ('{"email": ""}', "email: not a BambooHR field name"),
        ('{"profile": {"team": 3}}', "profile: team: not a BambooHR field name"),
        ('{"profile": {"bad name": "x"}}', "is not a shortname"),
    ],
)
def test_a_bad_stored_mapping_is_named(raw, reason):
    with pytest.raises(SettingsError, match=reason):
        parse_mapping("mapping", raw)


def test_the_default_mapping():
    record = {"id": "42", "firstName": "Ada", "lastName": "Lovelace", "department": "R&D",
              "workEmail": "Ada@Acme.example", "division": None, "location": "London"}  # fmt: skip
    assert moodle_fields(record, DEFAULT_MAPPING) == {
        "username": "ada@acme.example", "email": "Ada@Acme.example", "idnumber": "42",
        "firstname": "Ada", "lastname": "Lovelace", "department": "R&D",
        "institution": "London", "customfields": {}}  # fmt: skip
    assert moodle_fields({**record, "division": "Engines"}, DEFAULT_MAPPING)["institution"] == (
        "Engines"
    )
    assert bamboohr_fields(DEFAULT_MAPPING) == [
        "workEmail", "id", "firstName", "lastName", "department", "division", "location",
    ]  # fmt: skip
