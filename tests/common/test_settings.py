import subprocess
import sys

import pytest

from common.settings import SettingsError, load_settings
from tests.support import REPO, TEST_SECRET


def env(tmp_path, **values):
    return {"MANIREPORTS_INSTANCE": str(tmp_path), **values}


def test_defaults_describe_the_embedded_run(tmp_path):
    settings = load_settings(env(tmp_path))
    assert settings.database_url == f"sqlite:///{tmp_path / 'manireports.db'}"
    assert settings.moodle_prefix == "mdl_"
    assert settings.embedded_nats
    assert len(settings.secret_key) >= 32
    # The generated development key is kept, so sessions survive a restart.
    assert load_settings(env(tmp_path)).secret_key == settings.secret_key


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("DATABASE_URL", "not a url", "cannot parse"),
        ("DATABASE_URL", "oracle://x/y", "unsupported database"),
        ("DATABASE_URL", "postgresql+psycopg2://x/y", "psycopg"),
        ("MOODLE_DATABASE_URL", "postgresql+asyncpg://x/y", "psycopg"),
        ("MOODLE_DATABASE_URL", "mysql+mysqldb://root@h/db", "pymysql"),
        ("NATS_URL", "http://localhost:4222", "nats://"),
        ("WEB_PORT", "eighty", "whole number"),
        ("WEB_PORT", "70000", "outside"),
        ("TIME_TRACKING_ENABLED", "maybe", "boolean"),
        ("MANIREPORTS_ENV", "staging", "MANIREPORTS_ENV"),
        ("MOODLE_PREFIX", "mdl;drop", "MOODLE_PREFIX"),
        ("TASK_INTERVALS", "cleanup=soon", "TASK_INTERVALS"),
        ("LOGIN_IDLE_TIMEOUT_S", "10", "outside"),
        ("LOGIN_MAX_AGE_S", "forever", "whole number"),
        ("LOGIN_AUTH_PLUGINS", "manual,ldap;x", "auth plugin"),
        ("TRUSTED_PROXIES", "-1", "outside"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, variable, value, fragment):
    with pytest.raises(SettingsError) as err:
        load_settings(env(tmp_path, **{variable: value}))
    assert str(err.value).startswith(variable)
    assert fragment in str(err.value)


def test_sign_in_settings_default_to_short_sessions_local_passwords_and_no_proxy(tmp_path):
    settings = load_settings(env(tmp_path))
    assert (settings.login_idle_timeout_s, settings.login_max_age_s) == (7200, 43200)
    assert settings.login_auth_plugins == ("manual", "email")
    assert settings.trusted_proxies == 0
    overrides = {"LOGIN_AUTH_PLUGINS": " manual , saml2 ", "TRUSTED_PROXIES": "2",
                 "LOGIN_IDLE_TIMEOUT_S": "600", "LOGIN_MAX_AGE_S": "3600"}  # fmt: skip
    changed = load_settings(env(tmp_path, **overrides))
    assert changed.login_auth_plugins == ("manual", "saml2")
    assert (changed.trusted_proxies, changed.login_idle_timeout_s) == (2, 600)
    assert changed.login_max_age_s == 3600


def test_production_requires_a_strong_secret(tmp_path):
    with pytest.raises(SettingsError, match="^SECRET_KEY: required"):
        load_settings(env(tmp_path, MANIREPORTS_ENV="production"))
    with pytest.raises(SettingsError, match="^SECRET_KEY: must be at least 32"):
        load_settings(env(tmp_path, MANIREPORTS_ENV="production", SECRET_KEY="short"))
    settings = load_settings(env(tmp_path, MANIREPORTS_ENV="production", SECRET_KEY=TEST_SECRET))
    assert settings.production


def run_cli(tmp_path, *args, **values):
    full_env = {"PATH": "/usr/bin:/bin", **env(tmp_path, **values)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=full_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_reports_a_bad_setting_in_one_line(tmp_path):
    result = run_cli(tmp_path, "db", "upgrade", DATABASE_URL="::nonsense::")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "manireports: configuration error: DATABASE_URL: cannot parse '::nonsense::' "
        "as a database URL"
    ]


def test_cli_reports_an_unreachable_database_in_one_line(tmp_path):
    result = run_cli(
        tmp_path, "db", "upgrade", DATABASE_URL="mysql+pymysql://nobody@127.0.0.1:1/none"
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("manireports: configuration error: DATABASE_URL: cannot connect")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://ro@db/moodle", "mysql+pymysql://ro@db/moodle", "sqlite:///x.db"]
)
def test_each_supported_database_url_is_accepted(tmp_path, url):
    settings = load_settings(env(tmp_path, MOODLE_DATABASE_URL=url, DATABASE_URL=url))
    assert settings.moodle_database_url == url
    assert settings.database_url == url
