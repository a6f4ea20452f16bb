"""Moodle sessions on the demo site, written as Moodle's own session manager writes them.

The demo site stands in for Moodle, so it (not ManiReports, which only reads) writes what a
learner's sign-in to Moodle leaves behind: a `sessions` row whose `sid` is the value of the
`MoodleSession` cookie, `userid` the learner, `state` 0, `timecreated`/`timemodified` now —
and, for a site on the Redis handler, the hash Moodle 4.5 keeps at `<prefix>session_<sid>`
(each field stored through phpredis's PHP serializer). A browser given that cookie on the
Moodle host is "signed in to Moodle".
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Engine, delete

from common.moodle.tables import DEFAULT_PREFIX, MoodleTables

SID_ALPHABET = "abcdefghijklmnopqrstuv0123456789"  # PHP's 5 bits per character


def new_sid() -> str:
    """A session id shaped like PHP's default (32 characters, 5 bits each)."""
    return "".join(secrets.choice(SID_ALPHABET) for _ in range(32))


def sign_in(
    engine: Engine,
    user_id: int,
    now: int,
    *,
    prefix: str = DEFAULT_PREFIX,
    sid: str | None = None,
    ip: str = "127.0.0.1",
    **overrides: Any,
) -> str:
    """A Moodle session row for `user_id` (0: a visitor who is not logged in); its sid."""
    sid = sid or new_sid()
    row = {"sid": sid, "userid": user_id, "state": 0, "timecreated": now, "timemodified": now,
           "firstip": ip, "lastip": ip, **overrides}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(MoodleTables(prefix).sessions.insert().values(**row))
    return sid


def sign_out(engine: Engine, sid: str, *, prefix: str = DEFAULT_PREFIX) -> None:
    """What Moodle's logout does to the row: it is deleted."""
    sessions = MoodleTables(prefix).sessions
    with engine.begin() as conn:
        conn.execute(delete(sessions).where(sessions.c.sid == sid))


def php_serialize(value: object) -> bytes:
    """PHP's serialize() for the scalars and string-keyed arrays a session record holds."""
    if value is None:
        return b"N;"
    if isinstance(value, bool):
        return b"b:%d;" % value
    if isinstance(value, int):
        return b"i:%d;" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b's:%d:"%s";' % (len(value), value)
    if isinstance(value, dict):
        body = b"".join(php_serialize(k) + php_serialize(v) for k, v in value.items())
        return b"a:%d:{%s}" % (len(value), body)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def session_data(user_id: int, **user: object) -> bytes:
    """`$_SESSION` encoded as PHP's `php` session handler does: USER and SESSION objects."""
    fields = {"id": str(user_id), "auth": "manual", "mnethostid": "1", **user}
    body = b"".join(php_serialize(k) + php_serialize(v) for k, v in fields.items())
    return (
        b'USER|O:8:"stdClass":%d:{%s}' % (len(fields), body)
        + b'SESSION|O:8:"stdClass":1:{s:4:"lang";s:2:"en";}'
    )


def redis_hash_fields(sid: str, user_id: int, now: int, ip: str = "127.0.0.1") -> dict[str, bytes]:
    """The hash Moodle 4.5's Redis handler writes at `<prefix>session_<sid>` (add_session, then
    the session data), each field through phpredis's PHP serializer."""
    record: dict[str, object] = {
        "id": sid, "state": "0", "sid": sid, "userid": user_id,
        "sessdata": session_data(user_id), "timecreated": now, "timemodified": now,
        "firstip": ip, "lastip": ip,
    }  # fmt: skip
    return {name: php_serialize(value) for name, value in record.items()}
