"""The Classroom settings: the stored key decrypted (and only ever stored encrypted), the
environment winning field by field, the course map from the table with CLASSROOM_COURSE_MAP
adding and overriding pairs, and the checks a saved key and admin email go through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.classroom.config import (
    MAX_KEY_BYTES,
    add_course,
    load_classroom_settings,
    remove_course,
    save_admin_email,
    save_key,
)
from common.errors import FieldError
from common.models.access import AuditLog
from common.models.classroom import SETTINGS_ROW, ClassroomConfig
from common.settings import Settings, SettingsError
from tests.common.classroom.test_client import service_account_info
from tests.support import make_settings

ADMIN = "admin@school.example"
BROKEN_PEM = "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def settings(tmp_path: Path, appdb: AppDB) -> Settings:
    return make_settings(tmp_path, DATABASE_URL=appdb.url)


def store_key(appdb: AppDB, settings: Settings, info: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    info = info or service_account_info()
    with appdb.transaction() as s:
        save_key(s, json.dumps(info).encode(), secret_key=settings.secret_key, actor_id=2, ip=None)
        save_admin_email(s, ADMIN, actor_id=2, ip=None)
    return info


def test_nothing_saved_or_set_is_not_configured(appdb: AppDB, settings: Settings) -> None:
    config = load_classroom_settings(appdb, settings, {})
    assert (config.configured, config.course_map, config.key_from) == (False, {}, "")
    with pytest.raises(SettingsError, match="CLASSROOM_SERVICE_ACCOUNT_FILE: not set"):
        config.client()


def test_the_stored_key_is_encrypted_and_builds_the_client(
    appdb: AppDB, settings: Settings
) -> None:
    info = store_key(appdb, settings)
    with appdb.transaction() as s:
        row = s.get(ClassroomConfig, SETTINGS_ROW)
        assert row is not None
        stored = (row.secrets, row.key_client_email, row.admin_email)
    assert info["private_key"] not in stored[0] and "PRIVATE KEY" not in stored[0]
    assert stored[1:] == (info["client_email"], ADMIN)

    config = load_classroom_settings(appdb, settings, {})
    assert (config.configured, config.key_from, config.admin_email) == (True, "stored", ADMIN)
    credentials = config.client()._service._http.credentials
    assert (credentials._subject, credentials.service_account_email) == (
        ADMIN,
        info["client_email"],
    )


def test_a_changed_secret_key_asks_for_the_key_again(
    appdb: AppDB, settings: Settings, tmp_path: Path
) -> None:
    store_key(appdb, settings)
    other = make_settings(tmp_path, DATABASE_URL=appdb.url, SECRET_KEY="x" * 40)
    with pytest.raises(SettingsError, match="upload the key again on the Classroom page"):
        load_classroom_settings(appdb, other, {})


def test_environment_variables_win_field_by_field(
    appdb: AppDB, settings: Settings, tmp_path: Path
) -> None:
    store_key(appdb, settings)
    file_info = {**service_account_info(), "client_email": "file@proj.iam.gserviceaccount.com"}
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(file_info))
    env = {
        "CLASSROOM_SERVICE_ACCOUNT_FILE": str(key_file),
        "CLASSROOM_ADMIN_EMAIL": "other-admin@school.example",
        "CLASSROOM_API_ENDPOINT": "http://127.0.0.1:9/",
        "GOOGLE_WORKSPACE_DOMAINS": "School.Example, staff.example",
    }
    config = load_classroom_settings(appdb, settings, env)
    assert config.key_from == "CLASSROOM_SERVICE_ACCOUNT_FILE"
    assert (
        config.key_info is not None and config.key_info["client_email"] == file_info["client_email"]
    )
    assert config.admin_email == "other-admin@school.example"
    assert config.api_endpoint == "http://127.0.0.1:9/"
    assert config.workspace_domains == ("school.example", "staff.example")
    # Only the admin from the environment: the key stays the stored one.
    only_admin = load_classroom_settings(appdb, settings, {"CLASSROOM_ADMIN_EMAIL": "a@b.example"})
    assert (only_admin.key_from, only_admin.admin_email) == ("stored", "a@b.example")


def test_env_configuration_errors_name_the_variable(
    appdb: AppDB, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match="CLASSROOM_SERVICE_ACCOUNT_FILE: cannot read"):
        load_classroom_settings(appdb, settings, {"CLASSROOM_SERVICE_ACCOUNT_FILE": "/nope.json"})
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "authorized_user", "client_email": "a@b.c", "private_key": "x"}')
    with pytest.raises(SettingsError, match="CLASSROOM_SERVICE_ACCOUNT_FILE: .*not a service"):
        load_classroom_settings(appdb, settings, {"CLASSROOM_SERVICE_ACCOUNT_FILE": str(bad)})
    with pytest.raises(SettingsError, match="CLASSROOM_ADMIN_EMAIL: 'not-an-email'"):
        load_classroom_settings(appdb, settings, {"CLASSROOM_ADMIN_EMAIL": "not-an-email"})
    with pytest.raises(SettingsError, match="CLASSROOM_COURSE_MAP"):
        load_classroom_settings(appdb, settings, {"CLASSROOM_COURSE_MAP": "12"})
    good = tmp_path / "good.json"
    good.write_text(json.dumps(service_account_info()))
    config = load_classroom_settings(appdb, settings, {"CLASSROOM_SERVICE_ACCOUNT_FILE": str(good)})
    with pytest.raises(SettingsError, match="CLASSROOM_ADMIN_EMAIL: not set"):
        config.client()


def test_the_course_map_is_the_table_with_the_environment_adding_and_overriding(
    appdb: AppDB, settings: Settings
) -> None:
    with appdb.transaction() as s:
        add_course(s, 12, "111", moodle_course_name="Maths", actor_id=2, ip="10.0.0.1")
        add_course(s, 13, "d:art-7a", moodle_course_name="Art", actor_id=2, ip=None)
    assert load_classroom_settings(appdb, settings, {}).course_map == {12: "111", 13: "d:art-7a"}
    env = {"CLASSROOM_COURSE_MAP": "13=999,14=444"}
    assert load_classroom_settings(appdb, settings, env).course_map == {
        12: "111",
        13: "999",
        14: "444",
    }
    with (
        appdb.transaction() as s,
        pytest.raises(FieldError, match="Maths is already mapped to 111"),
    ):
        add_course(s, 12, "222", moodle_course_name="Maths", actor_id=2, ip=None)
    with appdb.transaction() as s, pytest.raises(FieldError, match="Classroom course id"):
        add_course(s, 15, "has spaces", moodle_course_name="X", actor_id=2, ip=None)
    with appdb.transaction() as s:
        assert remove_course(s, 12, moodle_course_name="Maths", actor_id=2, ip=None) == "111"
        assert remove_course(s, 12, moodle_course_name="Maths", actor_id=2, ip=None) is None
    assert load_classroom_settings(appdb, settings, {}).course_map == {13: "d:art-7a"}
    with appdb.transaction() as s:
        actions = [
            (a.action, a.object_id, json.loads(a.details or "{}").get("course"))
            for a in s.scalars(select(AuditLog).order_by(AuditLog.id))
        ]
    assert actions == [
        ("classroom_course_mapped", "12", "Maths"),
        ("classroom_course_mapped", "13", "Art"),
        ("classroom_course_unmapped", "12", "Maths"),
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "choose the service account's JSON key file"),
        (b"not json", "not a JSON file"),
        (b"[1, 2]", "a JSON object is expected"),
        (json.dumps({"type": "service_account", "client_email": "a@b.example"}).encode(),
         "no private_key"),
        (json.dumps({"type": "authorized_user", "client_email": "a@b.example",
                     "private_key": "k"}).encode(), "its type is 'authorized_user'"),
        (json.dumps({"type": "service_account", "client_email": "a@b.example",
                     "private_key": BROKEN_PEM,
                     "token_uri": "https://oauth2.googleapis.com/token"}).encode(),
         "its private key cannot be read"),
        (b"{" + b" " * MAX_KEY_BYTES + b"}", "larger than 16 KB"),
    ],
)  # fmt: skip
def test_a_bad_key_is_refused_with_the_reason(
    appdb: AppDB, settings: Settings, raw: bytes, reason: str
) -> None:
    with appdb.transaction() as s, pytest.raises(FieldError) as caught:
        save_key(s, raw, secret_key=settings.secret_key, actor_id=2, ip=None)
    assert caught.value.field == "key" and reason in caught.value.reason
    with appdb.transaction() as s:
        assert s.get(ClassroomConfig, SETTINGS_ROW) is None


def test_saving_the_admin_email_checks_it_and_audits_a_change(
    appdb: AppDB, settings: Settings
) -> None:
    for bad in ("", "admin", "admin@localhost"):
        with appdb.transaction() as s, pytest.raises(FieldError) as caught:
            save_admin_email(s, bad, actor_id=2, ip=None)
        assert caught.value.field == "admin_email"
    with appdb.transaction() as s:
        assert save_admin_email(s, " admin@school.example ", actor_id=2, ip=None) is True
    with appdb.transaction() as s:
        assert save_admin_email(s, "admin@school.example", actor_id=2, ip=None) is False
        assert [a.action for a in s.scalars(select(AuditLog))] == ["classroom_settings_saved"]
