"""Moodle's REST web service (`/webservice/rest/server.php`), the user functions the sync needs.

Facts relied on (../shared/moodle/WS.md): parameters are form-encoded in PHP bracket notation;
errors come as HTTP 200 with `{"exception", "errorcode", "message"}` and are matched on
`errorcode`; only "web services disabled" is a non-200 (403, empty body); an unknown token is
`invalidtoken`; a function outside the token's service is `accessexception`.
"""

from __future__ import annotations

import logging
import secrets
import string
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

log = logging.getLogger(__name__)

REST_PATH = "/webservice/rest/server.php"
TIMEOUT_S = (5.0, 60.0)
TRANSPORT_ATTEMPTS = 3
BACKOFF_BASE_S = 0.2
# Errors that mean the token cannot be used at all (when they come on the first call).
TOKEN_ERRORCODES = ("invalidtoken", "accessexception")
# Errors that mean "this function is not for you": try the other lookup function.
NOT_ALLOWED_ERRORCODES = ("accessexception", "invalidrecord")


class MoodleWSError(Exception):
    """A web-service error: ``errorcode`` as Moodle gives it (or our own for transport)."""

    def __init__(self, function: str, errorcode: str, message: str, exception: str = "") -> None:
        super().__init__(f"{function}: {errorcode}: {message}")
        self.function = function
        self.errorcode = errorcode
        self.message = message
        self.exception = exception


class MoodleWSUnavailable(MoodleWSError):
    """No usable answer (connection refused, timeout, 5xx, not JSON) after the retries."""


class MoodleWSUnusable(MoodleWSError):
    """Nothing will work with this address or token; the run stops."""


class MoodleWSTokenError(MoodleWSUnusable):
    """The token is refused (or web services are off)."""


def encode(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """PHP bracket notation: {"users": [{"id": 1}]} → [("users[0][id]", "1")]; booleans as 0/1."""
    if isinstance(value, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            pairs += encode(item, f"{prefix}[{key}]" if prefix else str(key))
        return pairs
    if isinstance(value, list | tuple):
        pairs = []
        for index, item in enumerate(value):
            pairs += encode(item, f"{prefix}[{index}]")
        return pairs
    if isinstance(value, bool):
        return [(prefix, "1" if value else "0")]
    return [(prefix, "" if value is None else str(value))]


def random_password() -> str:
    """A password nobody knows (the user signs in through the auth plugin): long, with every
    character class a Moodle password policy may demand."""
    classes = [string.ascii_lowercase, string.ascii_uppercase, string.digits, "!#%*+-=?@^_~"]
    chars = [secrets.choice(c) for c in classes]
    chars += [secrets.choice("".join(classes)) for _ in range(28)]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


class MoodleWS:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: tuple[float, float] = TIMEOUT_S,
        transport_attempts: int = TRANSPORT_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = base_url.rstrip("/") + REST_PATH
        self.token = token
        self.session = requests.Session()
        self.timeout = timeout
        self.transport_attempts = transport_attempts
        self.sleep = sleep
        self.calls_ok = 0  # answered without an error: the token works
        self.requests_made = 0
        self._get_users_allowed: bool | None = None  # None: not tried yet

    def close(self) -> None:
        self.session.close()

    def call(self, function: str, params: Mapping[str, Any] | None = None) -> Any:
        data = [
            ("wstoken", self.token),
            ("wsfunction", function),
            ("moodlewsrestformat", "json"),
        ] + encode(params or {})
        body = self._post(function, data)
        if isinstance(body, dict) and "exception" in body:
            errorcode = str(body.get("errorcode") or "")
            message = str(body.get("message") or "")
            if errorcode == "invalidtoken" or (
                errorcode == "accessexception" and self.calls_ok == 0 and not self._may_fall_back
            ):
                raise MoodleWSTokenError(function, errorcode, message, str(body["exception"]))
            raise MoodleWSError(function, errorcode, message, str(body["exception"]))
        self.calls_ok += 1
        return body

    _may_fall_back = False  # set while a lookup tries core_user_get_users before its fallback

    def _post(self, function: str, data: list[tuple[str, str]]) -> Any:
        for attempt in range(1, self.transport_attempts + 1):
            last = attempt == self.transport_attempts
            try:
                self.requests_made += 1
                response = self.session.post(self.url, data=data, timeout=self.timeout)
            except requests.RequestException as exc:
                if last:
                    raise MoodleWSUnavailable(
                        function, "unavailable", f"{type(exc).__name__}: {exc}"
                    ) from None
                self.sleep(BACKOFF_BASE_S * 2 ** (attempt - 1))
                continue
            if response.status_code == 403:
                raise MoodleWSTokenError(
                    function, "wsdisabled", "HTTP 403: web services or REST are disabled"
                )
            if response.status_code == 404:
                raise MoodleWSUnusable(
                    function,
                    "notfound",
                    f"HTTP 404: no web service at {self.url} "
                    "(MOODLE_WS_URL is the site's address, e.g. https://moodle.example.com)",
                )
            if response.status_code != 200:
                if last:
                    raise MoodleWSUnavailable(
                        function, "unavailable", f"HTTP {response.status_code}"
                    )
                self.sleep(BACKOFF_BASE_S * 2 ** (attempt - 1))
                continue
            try:
                return response.json()
            except ValueError:
                raise MoodleWSUnavailable(function, "notjson", "the answer is not JSON") from None
        raise AssertionError("unreachable")

    # Lookups -----------------------------------------------------------------------------

    def find_by_idnumber(self, idnumber: str) -> list[dict[str, Any]]:
        found = self._find("idnumber", idnumber)
        return [u for u in found if str(u.get("idnumber") or "") == idnumber]

    def find_by_email(self, email: str) -> list[dict[str, Any]]:
        """Exact (case-insensitive) matches: core_user_get_users matches email with LIKE, where
        `_` and `%` are wildcards."""
        found = self._find("email", email)
        return [u for u in found if str(u.get("email") or "").lower() == email.lower()]

    def users_with_auth(self, auth: str) -> list[dict[str, Any]] | None:
        """Every user of an auth plugin; None when core_user_get_users is not allowed."""
        if self._get_users_allowed is False:
            return None
        try:
            body = self.call("core_user_get_users", {"criteria": [{"key": "auth", "value": auth}]})
        except MoodleWSError as exc:
            if isinstance(exc, MoodleWSUnusable) or exc.errorcode not in NOT_ALLOWED_ERRORCODES:
                raise
            self._get_users_allowed = False
            return None
        return list(body.get("users") or []) if isinstance(body, dict) else []

    def _find(self, key: str, value: str) -> list[dict[str, Any]]:
        """core_user_get_users, falling back to core_user_get_users_by_field for good once the
        first is refused (not in the token's service, or unknown)."""
        if self._get_users_allowed is not False:
            self._may_fall_back = True
            try:
                body = self.call(
                    "core_user_get_users", {"criteria": [{"key": key, "value": value}]}
                )
            except MoodleWSError as exc:
                if isinstance(exc, MoodleWSUnusable) or exc.errorcode not in NOT_ALLOWED_ERRORCODES:
                    raise
                log.info(
                    "core_user_get_users refused (%s): using get_users_by_field", exc.errorcode
                )
                self._get_users_allowed = False
            else:
                self._get_users_allowed = True
                return list(body.get("users") or []) if isinstance(body, dict) else []
            finally:
                self._may_fall_back = False
        body = self.call("core_user_get_users_by_field", {"field": key, "values": [value]})
        return [u for u in body if isinstance(u, dict)] if isinstance(body, list) else []

    # Writes ------------------------------------------------------------------------------

    def create_user(self, fields: Mapping[str, Any], auth: str) -> int:
        """A new user with a random password Moodle never sends (createpassword 0)."""
        user = _user_params(fields)
        user.update({"auth": auth, "password": random_password(), "createpassword": False})
        body = self.call("core_user_create_users", {"users": [user]})
        if not isinstance(body, list) or not body or "id" not in body[0]:
            raise MoodleWSError("core_user_create_users", "unexpected", "no user id returned")
        return int(body[0]["id"])

    def update_user(self, userid: int, changes: Mapping[str, Any]) -> None:
        """Send only ``changes``; a per-user warning is raised as that user's error."""
        user = {"id": userid, **_user_params(changes)}
        body = self.call("core_user_update_users", {"users": [user]})
        warnings = body.get("warnings") if isinstance(body, dict) else None
        if warnings:
            first = warnings[0]
            raise MoodleWSError(
                "core_user_update_users",
                str(first.get("warningcode") or ""),
                str(first.get("message") or ""),
            )

    def set_suspended(self, userid: int, suspended: bool) -> None:
        self.update_user(userid, {"suspended": suspended})


def _user_params(fields: Mapping[str, Any]) -> dict[str, Any]:
    user = {k: v for k, v in fields.items() if k != "customfields"}
    custom = fields.get("customfields") or {}
    if custom:
        user["customfields"] = [{"type": k, "value": v} for k, v in custom.items()]
    return user
