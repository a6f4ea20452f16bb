"""Read the user id out of a PHP session, without ever building PHP objects.

Moodle keeps `$_SESSION` as PHP's session encoding (`session.serialize_handler = php`):
`USER|O:8:"stdClass":N:{s:2:"id";s:2:"42";…}SESSION|O:8:"stdClass":…`. Its Redis handler
stores that text through phpredis's PHP serializer, which wraps it once more as a PHP string
(`s:1234:"USER|…";`), optionally gzip-compressed first (`$CFG->session_redis_compressor`).

This module walks the bytes: string lengths are byte counts, so a value is skipped by jumping
over it, and nothing is ever instantiated (no classes, no references, no `__wakeup`). Input
size, nesting depth and element counts are bounded; anything unexpected raises
`UnreadableSession` and the caller refuses the session (fail closed).
"""

from __future__ import annotations

import gzip
import re
import zlib

MAX_SESSION_BYTES = 1024 * 1024  # Moodle sessions are a few KB to a few hundred KB
MAX_DEPTH = 32
MAX_ELEMENTS = 100_000
GZIP_MAGIC = b"\x1f\x8b"
_INT = re.compile(rb"-?\d{1,19}")
_FLOAT = re.compile(rb"-?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|INF|NAN)")
_NAME = re.compile(rb"[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*")


SKIPPED = object()  # what `value()` answers for an array or object it stepped over


class UnreadableSession(ValueError):
    """The data is not a PHP session this reader understands; the message says where."""


class _Reader:
    """A cursor over serialized PHP data that can read scalars and skip anything."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.elements = 0

    def fail(self, what: str) -> UnreadableSession:
        return UnreadableSession(f"{what} at byte {self.pos}")

    def expect(self, token: bytes) -> None:
        if not self.data.startswith(token, self.pos):
            raise self.fail(f"expected {token.decode()!r}")
        self.pos += len(token)

    def until(self, stop: bytes, pattern: re.Pattern[bytes]) -> bytes:
        end = self.data.find(stop, self.pos, self.pos + 400)
        if end < 0:
            raise self.fail(f"no {stop.decode()!r}")
        chunk = self.data[self.pos : end]
        if not pattern.fullmatch(chunk):
            raise self.fail("bad number")
        self.pos = end + len(stop)
        return chunk

    def length(self) -> int:
        size = int(self.until(b":", _INT))
        if size < 0 or self.pos + size > len(self.data):
            raise self.fail("length out of range")
        return size

    def quoted(self) -> bytes:
        """`N:"…"` — the bytes between the quotes (a string body or a class name)."""
        size = self.length()
        self.expect(b'"')
        body = self.data[self.pos : self.pos + size]
        self.pos += size
        self.expect(b'"')
        return body

    def count(self) -> int:
        items = int(self.until(b":", _INT))
        self.elements += items
        if items < 0 or self.elements > MAX_ELEMENTS:
            raise self.fail("too many elements")
        return items

    def value(self, depth: int = 0) -> object:
        """The next value if it is a scalar (None, bool, int, float, bytes); containers and
        objects are skipped and answered with the `SKIPPED` marker."""
        if depth > MAX_DEPTH:
            raise self.fail("nested too deep")
        kind = self.data[self.pos : self.pos + 2]
        self.pos += 2
        if kind == b"N;":
            return None
        if kind == b"b:":
            flag = self.until(b";", re.compile(rb"[01]"))
            return flag == b"1"
        if kind == b"i:":
            return int(self.until(b";", _INT))
        if kind == b"d:":
            return float(self.until(b";", _FLOAT))
        if kind == b"s:":
            body = self.quoted()
            self.expect(b";")
            return body
        if kind in (b"r:", b"R:"):  # a back-reference: never followed
            self.until(b";", _INT)
            return SKIPPED
        if kind == b"a:":
            self.skip_members(depth)
            return SKIPPED
        if kind == b"O:":
            self.quoted()
            self.expect(b":")
            self.skip_members(depth)
            return SKIPPED
        if kind == b"E:":  # an enum case: opaque
            self.quoted()
            self.expect(b";")
            return SKIPPED
        if kind == b"C:":  # a custom-serialized object: opaque
            self._skip_custom()
            return SKIPPED
        self.pos -= 2
        raise self.fail("unknown value type")

    def _skip_custom(self) -> None:
        self.quoted()  # class name
        self.expect(b":")
        size = self.length()
        self.expect(b"{")
        self.pos += size
        self.expect(b"}")

    def members(self, depth: int) -> list[tuple[object, int]]:
        """`N:{key value …}`: each key, and where its value starts (values are skipped)."""
        items = self.count()
        self.expect(b"{")
        found = []
        for _ in range(items):
            key = self.value(depth + 1)
            found.append((key, self.pos))
            self.value(depth + 1)
        self.expect(b"}")
        return found

    def skip_members(self, depth: int) -> None:
        self.members(depth)


def php_string(data: bytes) -> bytes:
    """The body of one serialized PHP string (`s:N:"…";`), e.g. a phpredis-wrapped value."""
    reader = _Reader(data)
    value = reader.value()
    if not isinstance(value, bytes) or reader.pos != len(data):
        raise UnreadableSession("not one serialized PHP string")
    return value


def php_scalar(data: bytes) -> int | str | None:
    """A serialized PHP int or string (`i:42;`, `s:2:"42";`), as phpredis stores one hash field;
    plain digits (phpredis without a serializer) are taken as they are. Anything else is
    unreadable."""
    if not data:
        return None
    if data[:2] in (b"i:", b"s:", b"N;"):
        reader = _Reader(data)
        value = reader.value()
        if reader.pos != len(data):
            raise UnreadableSession("trailing bytes after a scalar")
        if value is None or isinstance(value, int):
            return value
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        raise UnreadableSession("not an int or string")
    if not _INT.fullmatch(data):
        raise UnreadableSession("not a serialized scalar")
    return data.decode()


def unwrap_store_value(raw: bytes) -> bytes:
    """Session text from a Redis value: unwrap phpredis's PHP string and gzip, if present."""
    if len(raw) > MAX_SESSION_BYTES:
        raise UnreadableSession("session too large")
    data = raw
    if data.startswith(b"s:"):
        data = php_string(data)
    if data.startswith(GZIP_MAGIC):
        try:
            decompressor = zlib.decompressobj(wbits=31)
            data = decompressor.decompress(data, MAX_SESSION_BYTES)
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise UnreadableSession(f"bad gzip data ({exc})") from None
        if decompressor.unconsumed_tail:
            raise UnreadableSession("session too large once decompressed")
    return data


def session_user_id(data: bytes) -> int:
    """`$_SESSION['USER']->id` from session-encoded data (the `php` or `php_serialize`
    handler's format). 0 means a visitor who is not logged in."""
    if len(data) > MAX_SESSION_BYTES:
        raise UnreadableSession("session too large")
    if data.startswith(b"a:"):  # php_serialize: one array of the session's variables
        reader = _Reader(data, 2)
        for key, start in reader.members(0):
            if key == b"USER":
                return _user_id(data, start)
        raise UnreadableSession("no USER in the session")
    reader = _Reader(data)
    while reader.pos < len(data):
        bar = data.find(b"|", reader.pos, reader.pos + 256)
        if bar < 0 or not _NAME.fullmatch(data[reader.pos : bar]):
            raise reader.fail("expected a session variable name")
        name = data[reader.pos : bar]
        reader.pos = bar + 1
        if name == b"USER":
            return _user_id(data, reader.pos)
        reader.value()
    raise UnreadableSession("no USER in the session")


def _user_id(data: bytes, start: int) -> int:
    """USER is a stdClass whose `id` property is an int or a string of digits."""
    reader = _Reader(data, start)
    reader.expect(b"O:")
    if reader.quoted() != b"stdClass":
        raise reader.fail("USER is not a stdClass")
    reader.expect(b":")
    for key, value_at in reader.members(0):
        if key == b"id":
            value = _Reader(data, value_at).value()
            if isinstance(value, bool):
                break
            if isinstance(value, int) and value >= 0:
                return value
            if isinstance(value, bytes) and value.isdigit() and len(value) <= 18:
                return int(value)
            break
    raise UnreadableSession("USER has no readable id")
