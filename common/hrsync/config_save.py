"""Checking and saving the HR sync's settings from the admin page (and showing them back).

Every field is checked and every problem raised at once (FieldError, named by the form's
field); nothing is written unless all pass. A field an environment variable sets (see
`common.hrsync.settings.ENV_FIELDS`, and `HR_SYNC_NOTIFY` for the notification addresses, see
`common.hrsync.notify`) is not taken from the form: the variable wins at run time,
so the stored value is kept as it was.

Secrets (the BambooHR API key, the Moodle web-service token) are write-only: a blank field
keeps the stored one, which is never shown back (only `common.secrets.mask`). As on the email
offload page, a stored secret is never sent somewhere new: changing a base URL without entering
its secret again is refused for that secret's field.

Where the sync may connect follows the mailers' SMTP rule (common/mail/smtp_hosts.py): no
loopback, private, link-local (cloud metadata) or other non-global address, as a literal, as
`localhost` or as a name that resolves to one, and https only. The site setting
`HR_SYNC_ALLOW_PRIVATE_HOSTS` (an environment variable, like the other HR sync settings; for
test doubles and development) allows private hosts, and plain http to this machine's loopback
only. The check runs when the page saves; values set by environment variables are the
operator's and are not checked here.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from common.audit import record_audit
from common.errors import FieldError, raise_all
from common.hrsync.notify import NOTIFY_ENV
from common.hrsync.settings import (
    DEFAULT_AUTH,
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_MAPPING,
    DEFAULT_MAX_SUSPEND_SHARE,
    IDENTITY_FIELDS,
    auth_plugin,
    field_names,
    which_from_env,
)
from common.mail.addresses import address_problem
from common.mail.smtp_hosts import address_refused
from common.models.base import utcnow
from common.models.hrsync import SETTINGS_ROW, HrSyncConfig
from common.schedules.timing import parse_recurrence, zone_problem
from common.secrets import SecretUnreadable, decrypt, encrypt, mask
from common.settings import SettingsError

ALLOW_PRIVATE_ENV = "HR_SYNC_ALLOW_PRIVATE_HOSTS"
SECRET_FIELDS = ("bamboohr_api_key", "moodle_ws_token")
# Each secret, and the URL it is sent to.
SECRET_URL = {"bamboohr_api_key": "bamboohr_base_url", "moodle_ws_token": "moodle_ws_url"}
URL_LABEL = {"bamboohr_base_url": "BambooHR base URL", "moodle_ws_url": "Moodle URL"}
MAP_PREFIX = "map_"  # the form's mapping fields: map_username, …, map_profile
MAP_PROFILE = "map_profile"
MAX_URL_CHARS = 500
MAX_SECRET_CHARS = 500
MAX_BATCH_SIZE = 1_000_000
LOOKBACK_RANGE = (1, 3650)
MAX_AUTH_CHARS = 20
MAX_PROFILE_FIELDS = 50
MAX_NOTIFY_ADDRESSES = 50
MAX_LINE_PROBLEMS = 3  # problems named per multi-line field; the rest counted
PRIVATE_REFUSED = (
    "a private or local address, which the sync may not connect to "
    f"(the site setting {ALLOW_PRIVATE_ENV} allows it)"
)
HTTPS_ONLY = (
    "must be https:// (http:// only to this machine, when the site setting "
    f"{ALLOW_PRIVATE_ENV} allows private hosts)"
)
_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_GATEWAY_PATH = re.compile(rf"/api/gateway\.php/{_DOMAIN}")
_BAMBOO_HOST = re.compile(rf"{_DOMAIN}\.bamboohr\.com", re.IGNORECASE)
_SHORTNAME = re.compile(r"[A-Za-z0-9_]{1,100}")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SavedConfig:
    row: HrSyncConfig
    changed: list[str]  # the form's field names whose stored value changed (secrets included)


def allow_private_hosts(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return (env.get(ALLOW_PRIVATE_ENV) or "").strip().lower() in _TRUE


def save_hr_config(
    session: Session,
    values: Mapping[str, Any],
    *,
    secret_key: str,
    actor_id: int | None,
    ip: str | None = None,
    env: Mapping[str, str] | None = None,
) -> SavedConfig:
    """Check the form's ``values`` (strings, as posted) and store them in the one settings
    row; audited as `hr_sync_settings_saved` with the names of what changed, never a secret.
    FieldError (FieldErrors for several) names every bad field; nothing is written then."""
    env = os.environ if env is None else env
    from_env = which_from_env(env)
    allow_private = allow_private_hosts(env)
    row = session.get(HrSyncConfig, SETTINGS_ROW)
    before = _stored_fields(row)
    stored_secrets, unreadable = _stored_secrets(row, secret_key)
    errors: list[FieldError] = []
    after: dict[str, Any] = {}

    def text(name: str) -> str:
        return str(values.get(name) or "").strip()

    for name, check in (("bamboohr_base_url", bamboohr_url_problem),
                        ("moodle_ws_url", moodle_url_problem)):  # fmt: skip
        if name in from_env:
            after[name] = before[name]
            continue
        url = text(name).rstrip("/")
        problem = check(url, allow_private=allow_private) if url else None
        if problem:
            errors.append(FieldError(name, problem))
        after[name] = url

    secrets = dict(stored_secrets)
    for name in SECRET_FIELDS:
        given = text(name)
        url_name = SECRET_URL[name]
        if name in from_env:
            continue
        if given:
            if len(given) > MAX_SECRET_CHARS or any(c.isspace() for c in given):
                errors.append(FieldError(name, f"at most {MAX_SECRET_CHARS} characters, "
                                               "without spaces"))  # fmt: skip
            secrets[name] = given
        elif name in unreadable:
            errors.append(FieldError(name, "enter it again: the stored one cannot be read "
                                           "with this SECRET_KEY"))  # fmt: skip
        elif secrets.get(name) and after[url_name] != before[url_name]:
            reason = f"enter it again: the {URL_LABEL[url_name]} changed"
            errors.append(FieldError(name, reason + " (a stored secret is never sent elsewhere)"))

    after["batch_size"] = _whole(values, "batch_size", 0, MAX_BATCH_SIZE, errors, from_env,
                                 before)  # fmt: skip
    after["lookback_days"] = _whole(values, "lookback_days", *LOOKBACK_RANGE, errors, from_env,
                                    before)  # fmt: skip
    after["cron"], after["tz"] = _schedule(text("cron"), text("tz") or "UTC", errors)
    after["mapping_json"] = _mapping(values, errors)
    if "auth" in from_env:
        after["auth"] = before["auth"]
    else:
        after["auth"] = _auth(text("auth") or DEFAULT_AUTH, errors)
    if "max_suspend_share" in from_env:
        after["max_suspend_share"] = before["max_suspend_share"]
    else:
        after["max_suspend_share"] = _share(text("max_suspend_share"), errors)
    if (env.get(NOTIFY_ENV) or "").strip():
        from_env = from_env | {"notify_emails"}
        after["notify_emails"] = before["notify_emails"]
    else:
        after["notify_emails"] = _addresses(str(values.get("notify_emails") or ""), errors)
    raise_all(errors)

    if row is None:
        row = HrSyncConfig(id=SETTINGS_ROW)
        session.add(row)
    for name, value in after.items():
        setattr(row, name, value)
    kept = {k: v for k, v in secrets.items() if k in SECRET_FIELDS and v}
    secrets_changed = sorted(k for k in SECRET_FIELDS if kept.get(k) != stored_secrets.get(k))
    if secrets_changed or unreadable or row.secrets is None:
        row.secrets = encrypt(json.dumps(kept, sort_keys=True), secret_key) if kept else ""
    row.modifiedby = actor_id
    row.timemodified = utcnow()
    session.flush()
    changed = sorted(name for name in after if after[name] != before[name]) + secrets_changed
    record_audit(
        session, actor_id=actor_id, action="hr_sync_settings_saved", object_type="hr_sync_config",
        object_id=SETTINGS_ROW, ip=ip,
        details={"changed": changed, "secrets_changed": secrets_changed,
                 "scheduled": bool(after["cron"]), "tz": after["tz"],
                 "set_by_environment": sorted(from_env)},
    )  # fmt: skip
    return SavedConfig(row, changed)


# -- what the page shows ------------------------------------------------------------------------


def form_values(row: HrSyncConfig | None) -> dict[str, str]:
    """The stored settings as the form holds them; secrets always blank (write-only)."""
    stored = _stored_fields(row)
    mapping = _stored_mapping(stored["mapping_json"])
    values = {
        "bamboohr_base_url": stored["bamboohr_base_url"],
        "moodle_ws_url": stored["moodle_ws_url"],
        "bamboohr_api_key": "",
        "moodle_ws_token": "",
        "batch_size": str(stored["batch_size"]),
        "lookback_days": str(stored["lookback_days"]),
        "cron": stored["cron"],
        "tz": stored["tz"],
        "auth": stored["auth"],
        "max_suspend_share": f"{stored['max_suspend_share']:g}",
        "notify_emails": stored["notify_emails"],
        MAP_PROFILE: "\n".join(f"{k} = {v}" for k, v in (mapping.get("profile") or {}).items()),
    }
    for key in IDENTITY_FIELDS:
        value = mapping.get(key)
        values[MAP_PREFIX + key] = value if isinstance(value, str) else ""
    return values


def secret_masks(row: HrSyncConfig | None, secret_key: str) -> dict[str, str]:
    """Each secret as the page may show it: masked, "" when none is stored, or a note when
    the stored one cannot be read (SECRET_KEY changed)."""
    secrets, unreadable = _stored_secrets(row, secret_key)
    return {name: ("stored, but unreadable with this SECRET_KEY" if name in unreadable
                   else mask(secrets.get(name))) for name in SECRET_FIELDS}  # fmt: skip


def default_mapping() -> dict[str, str]:
    """The identity fields' defaults, as the form's placeholders."""
    return {key: str(DEFAULT_MAPPING[key]) for key in IDENTITY_FIELDS}


# -- URLs -----------------------------------------------------------------------------------------


def bamboohr_url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` is not a BambooHR API base URL the sync may use, or None. Two forms:
    https://api.bamboohr.com/api/gateway.php/{domain} and https://{domain}.bamboohr.com/api."""
    problem, parts = _url_problem(url, allow_private=allow_private)
    if problem or parts is None:
        return problem
    path = parts.path.rstrip("/")
    if path.endswith("/v1") or "/v1/" in path:
        return "the base URL ends before /v1 (e.g. https://api.bamboohr.com/api/gateway.php/acme)"
    if _GATEWAY_PATH.fullmatch(path):
        return None
    if path == "/api" and _BAMBOO_HOST.fullmatch(parts.hostname or ""):
        return None
    return ("must be https://api.bamboohr.com/api/gateway.php/{company domain} "
            "or https://{company domain}.bamboohr.com/api")  # fmt: skip


def moodle_url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` is not a Moodle site's base URL the sync may use, or None."""
    problem, parts = _url_problem(url, allow_private=allow_private)
    if problem or parts is None:
        return problem
    if "/webservice/" in parts.path + "/" or parts.path.endswith(".php"):
        return "the site's base URL (e.g. https://lms.example.com), without /webservice/…"
    return None


def reach_problem(url: str, *, allow_private: bool) -> str | None:
    """Why a run may not call ``url`` (a private host, plain http), or None."""
    return _url_problem(url, allow_private=allow_private)[0]


def _url_problem(url: str, *, allow_private: bool) -> tuple[str | None, Any]:
    if len(url) > MAX_URL_CHARS:
        return f"at most {MAX_URL_CHARS} characters", None
    if any(c.isspace() for c in url) or not url.isascii():
        return "a URL without spaces (non-ASCII host names in their xn-- form)", None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "an https:// URL", None
    if "@" in parts.netloc or parts.query or parts.fragment or url.endswith(("?", "#")):
        return "a base URL without user name, query or fragment", None
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        return "the port is not a number from 0 to 65535", None
    private, loopback = _host_class(parts.hostname)
    if private and not allow_private:
        return PRIVATE_REFUSED, None
    if parts.scheme == "http" and not (allow_private and loopback):
        return HTTPS_ONLY, None
    return None, parts


def _host_class(host: str) -> tuple[bool, bool]:
    """(any of its addresses is private or local, all of them are loopback). A name that does
    not resolve now counts as public: DNS may not know it yet."""
    name = host.rstrip(".").lower()
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return True, True
    try:
        addresses = [ipaddress.ip_address(name)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return False, False
        addresses = []
        for info in infos:
            try:
                addresses.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
            except ValueError:
                return True, False
    if not addresses:
        return False, False
    private = any(address_refused(a) for a in addresses)
    loopback = all(_loopback(a) for a in addresses)
    return private, loopback


def _loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


# -- the other fields -----------------------------------------------------------------------------


def _whole(
    values: Mapping[str, Any],
    name: str,
    low: int,
    high: int,
    errors: list[FieldError],
    from_env: set[str],
    before: Mapping[str, Any],
) -> int:
    if name in from_env:
        return int(before[name])
    raw = str(values.get(name) or "").strip()
    if not raw:
        errors.append(FieldError(name, f"required: a whole number from {low} to {high:,}"))
        return int(before[name])
    if not raw.isdigit() or not low <= int(raw) <= high:
        errors.append(FieldError(name, f"{raw[:20]!r} is not a whole number from {low} to "
                                       f"{high:,}"))  # fmt: skip
        return int(before[name])
    return int(raw)


def _schedule(cron: str, tz: str, errors: list[FieldError]) -> tuple[str, str]:
    """(cron, zone): an empty cron is "not scheduled"; the zone is checked either way."""
    if not cron:
        problem = zone_problem(tz)
        if problem:
            errors.append(FieldError("tz", problem))
        return "", tz
    try:
        recurrence = parse_recurrence(frequency="cron", cron=cron, tz=tz)
    except FieldError as exc:
        errors.extend(exc.errors)
        return cron, tz
    return recurrence.cron or "", recurrence.tz


def _mapping(values: Mapping[str, Any], errors: list[FieldError]) -> str:
    """The mapping as stored: only the identity fields given (the rest keep their defaults)
    and the custom profile fields, one `shortname = BambooHR field` a line."""
    mapping: dict[str, Any] = {}
    for key in IDENTITY_FIELDS:
        raw = str(values.get(MAP_PREFIX + key) or "").strip()
        if not raw:
            continue
        if len(raw) > 200 or not field_names(raw):
            reason = "a BambooHR field name (letters, digits, _ and .), or several as a|b"
            errors.append(FieldError(MAP_PREFIX + key, reason))
            continue
        mapping[key] = "|".join(field_names(raw))
    profile: dict[str, str] = {}
    problems: list[str] = []
    lines = str(values.get(MAP_PROFILE) or "").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        shortname, sep, source = (part.strip() for part in line.partition("="))
        if not sep or not _SHORTNAME.fullmatch(shortname) or not field_names(source):
            problems.append(f"line {number}: write it as shortname = BambooHR field")
        elif shortname in profile:
            problems.append(f"line {number}: {shortname} is mapped twice")
        else:
            profile[shortname] = "|".join(field_names(source))
    if len(profile) > MAX_PROFILE_FIELDS:
        problems.append(f"at most {MAX_PROFILE_FIELDS} profile fields")
    if problems:
        errors.append(FieldError(MAP_PROFILE, _lines(problems)))
    if profile:
        mapping["profile"] = profile
    return json.dumps(mapping, sort_keys=True)


def _auth(raw: str, errors: list[FieldError]) -> str:
    if len(raw) > MAX_AUTH_CHARS:
        errors.append(FieldError("auth", f"at most {MAX_AUTH_CHARS} characters"))
        return raw[:MAX_AUTH_CHARS]
    try:
        return auth_plugin("auth", raw)
    except SettingsError as exc:
        errors.append(FieldError("auth", str(exc).partition(": ")[2] or str(exc)))
        return raw


def _share(raw: str, errors: list[FieldError]) -> float:
    """A share 0..1; "10%" reads as 0.10; empty is the default."""
    if not raw:
        return DEFAULT_MAX_SUSPEND_SHARE
    percent = raw.endswith("%")
    try:
        value = float(raw.rstrip("%").strip())
    except ValueError:
        value = float("nan")
    if percent:
        value /= 100
    if not 0 <= value <= 1:  # also refuses nan and inf
        errors.append(FieldError("max_suspend_share", f"{raw[:20]!r} is not a share from 0 to 1 "
                                                      "(e.g. 0.1 or 10%)"))  # fmt: skip
        return DEFAULT_MAX_SUSPEND_SHARE
    return value


def _addresses(raw: str, errors: list[FieldError]) -> str:
    found: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(raw.splitlines(), 1):
        address = line.strip()
        if not address:
            continue
        problem = address_problem(address)
        if problem:
            problems.append(f"line {number}: {address[:60]!r}: {problem}")
        elif address.lower() not in {a.lower() for a in found}:
            found.append(address)
    if len(found) > MAX_NOTIFY_ADDRESSES:
        problems.append(f"at most {MAX_NOTIFY_ADDRESSES} addresses")
    if problems:
        errors.append(FieldError("notify_emails", _lines(problems)))
    return "\n".join(found)


def _lines(problems: list[str]) -> str:
    shown = "; ".join(problems[:MAX_LINE_PROBLEMS])
    more = len(problems) - MAX_LINE_PROBLEMS
    return shown + (f"; and {more} more" if more > 0 else "")


# -- the stored row ------------------------------------------------------------------------------


def _stored_fields(row: HrSyncConfig | None) -> dict[str, Any]:
    """The stored values (the model's defaults when there is no row yet)."""
    if row is None:
        return {"bamboohr_base_url": "", "moodle_ws_url": "", "batch_size": 0,
                "lookback_days": DEFAULT_LOOKBACK_DAYS, "cron": "", "tz": "UTC",
                "mapping_json": "{}", "auth": DEFAULT_AUTH,
                "max_suspend_share": DEFAULT_MAX_SUSPEND_SHARE, "notify_emails": ""}  # fmt: skip
    return {
        "bamboohr_base_url": row.bamboohr_base_url or "",
        "moodle_ws_url": row.moodle_ws_url or "",
        "batch_size": int(row.batch_size or 0),
        "lookback_days": int(row.lookback_days or DEFAULT_LOOKBACK_DAYS),
        "cron": row.cron or "",
        "tz": row.tz or "UTC",
        "mapping_json": row.mapping_json or "{}",
        "auth": row.auth or DEFAULT_AUTH,
        "max_suspend_share": float(
            DEFAULT_MAX_SUSPEND_SHARE if row.max_suspend_share is None else row.max_suspend_share
        ),  # fmt: skip
        "notify_emails": row.notify_emails or "",
    }


def _stored_mapping(raw: str) -> dict[str, Any]:
    try:
        mapping = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {}
    return mapping if isinstance(mapping, dict) else {}


def _stored_secrets(row: HrSyncConfig | None, secret_key: str) -> tuple[dict[str, str], set[str]]:
    """The stored secrets, and the names of those that cannot be read (SECRET_KEY changed:
    then both are, as they are one ciphertext)."""
    if row is None or not row.secrets:
        return {}, set()
    try:
        loaded = json.loads(decrypt(row.secrets, secret_key))
    except (SecretUnreadable, json.JSONDecodeError):
        return {}, set(SECRET_FIELDS)
    if not isinstance(loaded, dict):
        return {}, set(SECRET_FIELDS)
    return {k: str(v) for k, v in loaded.items() if k in SECRET_FIELDS and v}, set()
