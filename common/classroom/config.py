"""The Classroom roster sync's settings: what an admin saved on the Classroom page (the service
account key encrypted at rest, the administrator it acts as, the Moodle → Classroom course
mapping) with environment variables winning field by field:

- `CLASSROOM_SERVICE_ACCOUNT_FILE`: a JSON key file, over the stored key;
- `CLASSROOM_ADMIN_EMAIL`: over the stored administrator;
- `CLASSROOM_API_ENDPOINT`: another API endpoint (environment only); alone, without any key, the
  client calls it anonymously (the tests' local Classroom API);
- `GOOGLE_WORKSPACE_DOMAINS`: read as common/settings.py reads it;
- `CLASSROOM_COURSE_MAP` (`12=abc123,13=def456`): adds pairs to the stored mapping, and a pair
  for a Moodle course the table maps too overrides it.

A bad value raises SettingsError naming the variable (or the page's field). Saving validates
the uploaded key (a service account's JSON key, bounded in size), keeps only its client_email
in the clear, and audits every change.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.oauth2 import service_account
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.appdb import AppDB
from common.audit import record_audit
from common.classroom.client import SCOPES, ClassroomClient
from common.errors import FieldError
from common.mail.addresses import address_problem
from common.models.base import utcnow
from common.models.classroom import SETTINGS_ROW, ClassroomConfig, ClassroomCourse
from common.secrets import SecretUnreadable, decrypt, encrypt
from common.settings import Settings, SettingsError, _names

COURSE_MAP_ENV = "CLASSROOM_COURSE_MAP"
KEY_FILE_ENV = "CLASSROOM_SERVICE_ACCOUNT_FILE"
ADMIN_ENV = "CLASSROOM_ADMIN_EMAIL"
ENDPOINT_ENV = "CLASSROOM_API_ENDPOINT"
DOMAINS_ENV = "GOOGLE_WORKSPACE_DOMAINS"
ENV_VARS = (KEY_FILE_ENV, ADMIN_ENV, ENDPOINT_ENV, COURSE_MAP_ENV)

MAX_KEY_BYTES = 16 * 1024  # a real key is about 2.3 KB
KEY_FIELDS = ("type", "client_email", "private_key")
# Classroom course ids are numbers; aliases look like `d:maths-7a` or `p:…`.
CLASSROOM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.\-]{0,99}$")
OBJECT_TYPE = "classroom"


@dataclass(frozen=True)
class ClassroomSettings:
    key_info: dict[str, Any] | None = field(default=None, repr=False)
    key_from: str = ""  # KEY_FILE_ENV or "stored": where the key came from
    admin_email: str = ""
    api_endpoint: str | None = None
    workspace_domains: tuple[str, ...] = ()
    course_map: dict[int, str] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        """Whether there is anything to call Classroom with (a key, or a local endpoint)."""
        return self.key_info is not None or self.api_endpoint is not None

    def client(self, **kwargs: Any) -> ClassroomClient:
        if self.key_info is None:
            if self.api_endpoint:
                return ClassroomClient.for_endpoint(
                    self.api_endpoint, workspace_domains=self.workspace_domains, **kwargs
                )
            raise SettingsError(
                f"{KEY_FILE_ENV}: not set, and no key stored: upload the service account key "
                "on the Classroom page or set the variable"
            )
        if not self.admin_email:
            raise SettingsError(
                f"{ADMIN_ENV}: not set: save the Workspace administrator the service account "
                "acts as on the Classroom page or set the variable"
            )
        return ClassroomClient.from_service_account(
            self.key_info,
            self.admin_email,
            workspace_domains=self.workspace_domains,
            api_endpoint=self.api_endpoint,
            **kwargs,
        )


# --- loading ---------------------------------------------------------------------------------


def parse_course_map(raw: str) -> dict[int, str]:
    """`12=abc123,13=def456` → {12: "abc123", 13: "def456"}; a malformed pair is a
    configuration error naming the variable and the pair."""
    mapping: dict[int, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        moodle_id, eq, classroom_id = (part.strip() for part in pair.partition("="))
        if not eq or not moodle_id.isdigit() or not CLASSROOM_ID.match(classroom_id):
            raise SettingsError(f"{COURSE_MAP_ENV}: {pair[:80]!r} is not 'moodle id=classroom id'")
        if int(moodle_id) in mapping:
            raise SettingsError(f"{COURSE_MAP_ENV}: Moodle course {moodle_id} is mapped twice")
        mapping[int(moodle_id)] = classroom_id
    return mapping


def stored_courses(session: Session) -> dict[int, str]:
    rows = session.scalars(select(ClassroomCourse).order_by(ClassroomCourse.moodle_course_id))
    return {int(row.moodle_course_id): row.classroom_course_id for row in rows}


def load_classroom_settings(
    appdb: AppDB, settings: Settings, env: Mapping[str, str] | None = None
) -> ClassroomSettings:
    env = os.environ if env is None else env

    def given(name: str) -> str:
        return (env.get(name) or "").strip()

    key_file = given(KEY_FILE_ENV)
    with appdb.transaction() as session:
        row = session.get(ClassroomConfig, SETTINGS_ROW)
        course_map = stored_courses(session)
    key_info: dict[str, Any] | None = None
    key_from = ""
    if key_file:
        key_info, key_from = _key_from_file(key_file), KEY_FILE_ENV
    elif row is not None and row.secrets:
        try:
            plain = decrypt(row.secrets, settings.secret_key)
        except SecretUnreadable:
            raise SettingsError(
                "secrets: the stored service account key cannot be decrypted with this "
                "SECRET_KEY; upload the key again on the Classroom page"
            ) from None
        key_info, key_from = json.loads(plain), "stored"
    admin = given(ADMIN_ENV) or (row.admin_email if row is not None else "") or ""
    if admin and address_problem(admin):
        where = ADMIN_ENV if given(ADMIN_ENV) else "the Classroom page's admin email"
        raise SettingsError(f"{where}: {admin[:80]!r}: {address_problem(admin)}")
    # The environment this was called with wins; settings read the process's at start.
    domains = _names(env[DOMAINS_ENV]) if DOMAINS_ENV in env else settings.google_workspace_domains
    course_map.update(parse_course_map(given(COURSE_MAP_ENV)))
    return ClassroomSettings(
        key_info=key_info,
        key_from=key_from,
        admin_email=admin,
        api_endpoint=given(ENDPOINT_ENV) or None,
        workspace_domains=domains,
        course_map=course_map,
    )


def _key_from_file(path: str) -> dict[str, Any]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SettingsError(f"{KEY_FILE_ENV}: cannot read the key file: {exc}") from None
    try:
        return service_account_key(raw)
    except FieldError as exc:
        raise SettingsError(f"{KEY_FILE_ENV}: {exc.reason}") from None


# --- saving ----------------------------------------------------------------------------------


def service_account_key(raw: bytes) -> dict[str, Any]:
    """The key's JSON object, checked: a service account key (type, client_email, a private
    key Google's library can read), at most MAX_KEY_BYTES; otherwise FieldError("key", why)."""
    if not raw.strip():
        raise FieldError("key", "choose the service account's JSON key file")
    if len(raw) > MAX_KEY_BYTES:
        raise FieldError("key", f"larger than {MAX_KEY_BYTES // 1024} KB: not a JSON key file")
    try:
        info = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        raise FieldError("key", "not a JSON file: download the key as JSON") from None
    if not isinstance(info, dict):
        raise FieldError("key", "not a service account key (a JSON object is expected)")
    missing = [name for name in KEY_FIELDS if not isinstance(info.get(name), str) or not info[name]]
    if missing:
        raise FieldError("key", f"not a service account key: no {missing[0]}")
    if info["type"] != "service_account":
        raise FieldError(
            "key",
            f"not a service account key: its type is {info['type'][:40]!r}, not 'service_account'",
        )
    if address_problem(info["client_email"]):
        raise FieldError("key", "its client_email is not an email address")
    try:
        service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
    except (ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise FieldError("key", f"its private key cannot be read ({reason})") from None
    return info


def admin_email(raw: str) -> str:
    email = raw.strip()
    if not email:
        raise FieldError("admin_email", "enter the Workspace administrator's email")
    problem = address_problem(email)
    if problem:
        raise FieldError("admin_email", problem)
    return email


def classroom_course_id(raw: str) -> str:
    value = raw.strip()
    if not CLASSROOM_ID.match(value):
        raise FieldError(
            "classroom_course_id",
            "a Classroom course id (digits, or an alias such as d:maths-7a), up to 100 characters",
        )
    return value


def _row(session: Session) -> ClassroomConfig:
    row = session.get(ClassroomConfig, SETTINGS_ROW)
    if row is None:
        row = ClassroomConfig(id=SETTINGS_ROW, admin_email="", key_client_email="", secrets="")
        session.add(row)
    return row


def save_key(
    session: Session, raw: bytes, *, secret_key: str, actor_id: int | None, ip: str | None
) -> str:
    """Store the uploaded key encrypted; the service account's client_email (what is shown)."""
    info = service_account_key(raw)
    row = _row(session)
    replaced = row.key_client_email or None
    row.secrets = encrypt(json.dumps(info), secret_key)
    row.key_client_email = info["client_email"]
    row.modifiedby, row.timemodified = actor_id, utcnow()
    record_audit(session, actor_id=actor_id, action="classroom_key_saved", object_type=OBJECT_TYPE,
                 object_id=SETTINGS_ROW, ip=ip,
                 details={"client_email": info["client_email"], "replaced": replaced})  # fmt: skip
    return str(info["client_email"])


def save_admin_email(session: Session, raw: str, *, actor_id: int | None, ip: str | None) -> bool:
    """Whether it changed."""
    email = admin_email(raw)
    row = _row(session)
    before = row.admin_email or ""
    if before == email:
        return False
    row.admin_email = email
    row.modifiedby, row.timemodified = actor_id, utcnow()
    record_audit(session, actor_id=actor_id, action="classroom_settings_saved",
                 object_type=OBJECT_TYPE, object_id=SETTINGS_ROW, ip=ip,
                 details={"admin_email": {"before": before, "after": email}})  # fmt: skip
    return True


def add_course(
    session: Session,
    moodle_course_id: int,
    raw_classroom_id: str,
    *,
    moodle_course_name: str,
    actor_id: int | None,
    ip: str | None,
) -> ClassroomCourse:
    classroom_id = classroom_course_id(raw_classroom_id)
    taken = session.scalars(
        select(ClassroomCourse).where(ClassroomCourse.moodle_course_id == moodle_course_id)
    ).first()
    if taken is not None:
        raise FieldError(
            "moodle_course_id",
            f"{moodle_course_name} is already mapped to {taken.classroom_course_id}; "
            "remove that mapping first",
        )
    row = ClassroomCourse(
        moodle_course_id=moodle_course_id,
        classroom_course_id=classroom_id,
        createdby=actor_id,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    record_audit(session, actor_id=actor_id, action="classroom_course_mapped",
                 object_type="course", object_id=moodle_course_id, ip=ip,
                 details={"course": moodle_course_name,
                          "classroom_course_id": classroom_id})  # fmt: skip
    return row


def remove_course(
    session: Session,
    moodle_course_id: int,
    *,
    moodle_course_name: str,
    actor_id: int | None,
    ip: str | None,
) -> str | None:
    """The Classroom course it was mapped to, or None when it was not mapped."""
    row = session.scalars(
        select(ClassroomCourse).where(ClassroomCourse.moodle_course_id == moodle_course_id)
    ).first()
    if row is None:
        return None
    classroom_id = row.classroom_course_id
    session.delete(row)
    record_audit(session, actor_id=actor_id, action="classroom_course_unmapped",
                 object_type="course", object_id=moodle_course_id, ip=ip,
                 details={"course": moodle_course_name,
                          "classroom_course_id": classroom_id})  # fmt: skip
    return classroom_id
