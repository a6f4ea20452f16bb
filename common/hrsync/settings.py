"""The HR sync's settings: the stored row (secrets decrypted) with environment variables winning,
as the nightly job it replaces read them. A bad or missing value raises SettingsError naming the
variable (or the stored field), which the CLI prints as one line and exits 2.

The default attribute mapping (Moodle user field ← BambooHR field), each overridable per key in
the stored mapping:

    username    ← workEmail, lower-cased (Moodle refuses upper-case usernames)
    email       ← workEmail
    idnumber    ← id (BambooHR's employee id: what ties a Moodle user to an employee)
    firstname   ← firstName
    lastname    ← lastName
    department  ← department
    institution ← division, or location when the division is empty ("division|location")
    profile     ← {} (custom profile field shortname → BambooHR field)

A value "a|b" takes the first of the fields that is not empty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from common.appdb import AppDB
from common.models.hrsync import SETTINGS_ROW, HrSyncConfig
from common.secrets import SecretUnreadable, decrypt
from common.settings import Settings, SettingsError

IDENTITY_FIELDS = (
    "username",
    "email",
    "idnumber",
    "firstname",
    "lastname",
    "department",
    "institution",
)
DEFAULT_MAPPING: dict[str, Any] = {
    "username": "workEmail",
    "email": "workEmail",
    "idnumber": "id",
    "firstname": "firstName",
    "lastname": "lastName",
    "department": "department",
    "institution": "division|location",
    "profile": {},
}
DEFAULT_AUTH = "oidc"
DEFAULT_MAX_SUSPEND_SHARE = 0.10
DEFAULT_LOOKBACK_DAYS = 30

# Environment variable → HrSyncSettings field it overrides.
ENV_FIELDS = {
    "BAMBOOHR_BASE_URL": "bamboohr_base_url",
    "BAMBOOHR_API_KEY": "bamboohr_api_key",
    "MOODLE_WS_URL": "moodle_ws_url",
    "MOODLE_WS_TOKEN": "moodle_ws_token",
    "HR_SYNC_BATCH_SIZE": "batch_size",
    "HR_SYNC_LOOKBACK_DAYS": "lookback_days",
    "HR_SYNC_MAX_SUSPEND_SHARE": "max_suspend_share",
    "HR_SYNC_AUTH": "auth",
}


@dataclass(frozen=True)
class HrSyncSettings:
    bamboohr_base_url: str = ""
    bamboohr_api_key: str = field(default="", repr=False)
    moodle_ws_url: str = ""
    moodle_ws_token: str = field(default="", repr=False)
    batch_size: int = 0  # 0: every remaining change in one run
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    cron: str = ""
    tz: str = "UTC"
    mapping: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_MAPPING))
    auth: str = DEFAULT_AUTH
    max_suspend_share: float = DEFAULT_MAX_SUSPEND_SHARE
    notify_emails: tuple[str, ...] = ()

    def require_connection(self) -> None:
        """What a run cannot start without, named the way an operator sets it."""
        missing = [
            name
            for name, value in (
                ("BAMBOOHR_BASE_URL", self.bamboohr_base_url),
                ("BAMBOOHR_API_KEY", self.bamboohr_api_key),
                ("MOODLE_WS_URL", self.moodle_ws_url),
                ("MOODLE_WS_TOKEN", self.moodle_ws_token),
            )
            if not value
        ]
        if missing:
            raise SettingsError(
                f"{missing[0]}: not set (save it on the HR sync page or set the variable)"
                + (f"; also missing: {', '.join(missing[1:])}" if missing[1:] else "")
            )


def which_from_env(env: Mapping[str, str] | None = None) -> set[str]:
    """The HrSyncSettings fields an environment variable sets (and so wins over the page)."""
    env = os.environ if env is None else env
    return {name for var, name in ENV_FIELDS.items() if (env.get(var) or "").strip()}


def load_hr_settings(
    appdb: AppDB, settings: Settings, env: Mapping[str, str] | None = None
) -> HrSyncSettings:
    env = os.environ if env is None else env
    with appdb.transaction() as session:
        stored = _stored(session, settings.secret_key, needs_secrets=_secret_needs(env))
    values = {**stored, **_from_env(env)}
    _check_reachable(values, env)
    return HrSyncSettings(**values)


def _check_reachable(values: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """The page refuses private and plain-http URLs when they are saved; the same rule holds
    for the addresses a run will call, wherever they came from (an environment variable, a
    row saved before the rule, a name that now resolves to a private address)."""
    from common.hrsync.config_save import allow_private_hosts, reach_problem

    allow = allow_private_hosts(env)
    for name, var in (("bamboohr_base_url", "BAMBOOHR_BASE_URL"),
                      ("moodle_ws_url", "MOODLE_WS_URL")):  # fmt: skip
        url = str(values.get(name) or "")
        problem = reach_problem(url, allow_private=allow) if url else None
        if problem:
            where = var if (env.get(var) or "").strip() else f"the HR sync page's {name}"
            raise SettingsError(f"{where}: {problem}")


def _secret_needs(env: Mapping[str, str]) -> bool:
    """Whether a stored secret is read at all: not when the environment sets both."""
    return not all((env.get(var) or "").strip() for var in ("BAMBOOHR_API_KEY", "MOODLE_WS_TOKEN"))


def _stored(session: Session, secret_key: str, *, needs_secrets: bool) -> dict[str, Any]:
    row = session.get(HrSyncConfig, SETTINGS_ROW)
    if row is None:
        return {}
    values: dict[str, Any] = {
        "bamboohr_base_url": base_url("bamboohr_base_url", row.bamboohr_base_url or ""),
        "moodle_ws_url": base_url("moodle_ws_url", row.moodle_ws_url or ""),
        "batch_size": int(row.batch_size or 0),
        "lookback_days": int(row.lookback_days if row.lookback_days is not None else 30),
        "cron": row.cron or "",
        "tz": row.tz or "UTC",
        "mapping": parse_mapping("mapping", row.mapping_json or "{}"),
        "auth": auth_plugin("auth", row.auth or DEFAULT_AUTH),
        "max_suspend_share": float(
            DEFAULT_MAX_SUSPEND_SHARE if row.max_suspend_share is None else row.max_suspend_share
        ),
        "notify_emails": tuple(
            line.strip() for line in (row.notify_emails or "").splitlines() if line.strip()
        ),
    }
    if row.secrets and needs_secrets:
        try:
            secrets = json.loads(decrypt(row.secrets, secret_key))
        except SecretUnreadable:
            raise SettingsError(
                "secrets: the stored API key and token cannot be decrypted with this "
                "SECRET_KEY; save them again on the HR sync page"
            ) from None
        values["bamboohr_api_key"] = str(secrets.get("bamboohr_api_key") or "")
        values["moodle_ws_token"] = str(secrets.get("moodle_ws_token") or "")
    return values


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}

    def given(name: str) -> str | None:
        raw = (env.get(name) or "").strip()
        return raw or None

    if (raw := given("BAMBOOHR_BASE_URL")) is not None:
        values["bamboohr_base_url"] = base_url("BAMBOOHR_BASE_URL", raw)
    if (raw := given("BAMBOOHR_API_KEY")) is not None:
        values["bamboohr_api_key"] = raw
    if (raw := given("MOODLE_WS_URL")) is not None:
        values["moodle_ws_url"] = base_url("MOODLE_WS_URL", raw)
    if (raw := given("MOODLE_WS_TOKEN")) is not None:
        values["moodle_ws_token"] = raw
    if (raw := given("HR_SYNC_BATCH_SIZE")) is not None:
        values["batch_size"] = whole_number("HR_SYNC_BATCH_SIZE", raw, 0, 1_000_000)
    if (raw := given("HR_SYNC_LOOKBACK_DAYS")) is not None:
        values["lookback_days"] = whole_number("HR_SYNC_LOOKBACK_DAYS", raw, 0, 36_500)
    if (raw := given("HR_SYNC_MAX_SUSPEND_SHARE")) is not None:
        values["max_suspend_share"] = share("HR_SYNC_MAX_SUSPEND_SHARE", raw)
    if (raw := given("HR_SYNC_AUTH")) is not None:
        values["auth"] = auth_plugin("HR_SYNC_AUTH", raw)
    return values


def base_url(name: str, raw: str) -> str:
    """An http(s) base URL without query or fragment, kept without its trailing slash."""
    raw = raw.strip()
    if not raw:
        return ""
    scheme, _, rest = raw.partition("://")
    host = rest.split("/", 1)[0]
    if scheme not in ("http", "https") or not host or any(c in raw for c in "?#@ "):
        raise SettingsError(f"{name}: {raw[:100]!r} is not an http:// or https:// URL")
    return raw.rstrip("/")


def whole_number(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw[:40]!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}: {value} is outside {low}..{high}")
    return value


def share(name: str, raw: str) -> float:
    """A share of users, 0..1; "10%" is read as 0.10."""
    text = raw.strip()
    percent = text.endswith("%")
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise SettingsError(f"{name}: {raw[:40]!r} is not a number (e.g. 0.1 or 10%)") from None
    if percent:
        value /= 100
    if not 0 <= value <= 1:  # also refuses nan
        raise SettingsError(f"{name}: {raw[:40]} is outside 0..1 (0%..100%)")
    return value


def auth_plugin(name: str, raw: str) -> str:
    plugin = raw.strip()
    if not plugin or not plugin.replace("_", "").isalnum() or not plugin.islower():
        raise SettingsError(f"{name}: {raw[:40]!r} is not a Moodle auth plugin name")
    if plugin in ("mnet", "webservice", "nologin"):
        raise SettingsError(f"{name}: Moodle cannot create users with auth {plugin!r}")
    return plugin


def parse_mapping(name: str, raw: str | Mapping[str, Any]) -> dict[str, Any]:
    """The stored mapping over the defaults: each identity key a BambooHR field name (or
    "a|b"), "profile" a {shortname: field} object."""
    if isinstance(raw, str):
        try:
            given = json.loads(raw or "{}")
        except json.JSONDecodeError:
            raise SettingsError(f"{name}: not a JSON object") from None
    else:
        given = dict(raw)
    if not isinstance(given, dict):
        raise SettingsError(f"{name}: not a JSON object")
    unknown = sorted(set(given) - {*IDENTITY_FIELDS, "profile"})
    if unknown:
        raise SettingsError(f"{name}: unknown Moodle field {unknown[0]!r}")
    mapping: dict[str, Any] = {**DEFAULT_MAPPING, "profile": {}}
    for key in IDENTITY_FIELDS:
        if key in given:
            value = given[key]
            if not isinstance(value, str) or not _field_names(value):
                raise SettingsError(f"{name}: {key}: not a BambooHR field name")
            mapping[key] = value.strip()
    profile = given.get("profile") or {}
    if not isinstance(profile, dict):
        raise SettingsError(f"{name}: profile: not an object of shortname → field")
    for shortname, source in profile.items():
        if not str(shortname).replace("_", "").isalnum():
            raise SettingsError(f"{name}: profile: {str(shortname)[:40]!r} is not a shortname")
        if not isinstance(source, str) or not _field_names(source):
            raise SettingsError(f"{name}: profile: {shortname}: not a BambooHR field name")
        mapping["profile"][str(shortname)] = source.strip()
    return mapping


def _field_names(value: str) -> list[str]:
    names = [part.strip() for part in value.split("|")]
    if not names or any(not n or not n.replace("_", "").replace(".", "").isalnum() for n in names):
        return []
    return names


def field_names(value: str) -> list[str]:
    """The BambooHR fields of one mapping value, in the order they are tried."""
    return _field_names(value)
