"""Device cookies (OWASP's scheme against lock-out attacks): proof that this browser has signed
in to an account before.

After a successful sign-in the browser gets a cookie signed with SECRET_KEY naming the account
and a random device id. Failed attempts from a browser that shows a valid cookie for the account
count against that device alone, so a stranger guessing passwords elsewhere can slow the
account's untrusted clients but never lock out the person at their own browser. One cookie
holds the few accounts most recently signed in from the browser (a shared computer).
"""

from __future__ import annotations

import secrets
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "mr_device"
MAX_AGE_S = 180 * 86400
MAX_ACCOUNTS = 5


class DeviceCookies:
    def __init__(self, secret_key: str):
        self._signer = URLSafeTimedSerializer(secret_key, salt="manireports/device-cookie")

    def device_for(self, cookie: str | None, username: str, now: float) -> str | None:
        """The device id this browser holds for `username`, if its cookie is genuine and fresh."""
        for name, device, _issued in self._entries(cookie, now):
            if name == username:
                return device
        return None

    def issue(self, cookie: str | None, username: str, now: float) -> str:
        """The cookie after `username` signed in: its entry renewed (a new device id if none)."""
        entries = self._entries(cookie, now)
        device = next((d for name, d, _ in entries if name == username), None)
        kept = [e for e in entries if e[0] != username][: MAX_ACCOUNTS - 1]
        fresh = [username, device or secrets.token_urlsafe(16), int(now)]
        return self._signer.dumps([fresh, *kept])

    def _entries(self, cookie: str | None, now: float) -> list[list[Any]]:
        if not cookie:
            return []
        try:
            entries = self._signer.loads(cookie, max_age=MAX_AGE_S)
        except BadSignature:
            return []
        if not isinstance(entries, list):
            return []
        return [
            entry
            for entry in entries
            if isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and isinstance(entry[1], str)
            and isinstance(entry[2], int)
            and now - entry[2] < MAX_AGE_S
        ]
