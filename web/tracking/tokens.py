"""Heartbeat tokens: signed, expiring, per user. A beat names its user only through one.

`v1.<userid>.<expires>.<signature>`, the signature an HMAC-SHA256 of the rest under a key
derived from SECRET_KEY. Verifying costs one HMAC and no database read, so the heartbeat
endpoint stays cheap; changing SECRET_KEY revokes every token at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

VERSION = "v1"
MAX_TOKEN_LENGTH = 200


class TokenRejected(ValueError):
    """The token is malformed, forged or expired; the message says which."""


class HeartbeatTokens:
    def __init__(self, secret_key: str, ttl_s: int):
        self._key = hmac.new(secret_key.encode(), b"manireports/heartbeat-token", "sha256").digest()
        self.ttl_s = ttl_s

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, user_id: int, now: float) -> tuple[str, int]:
        """A token for `user_id` and the Unix time it expires."""
        expires = int(now) + self.ttl_s
        body = f"{VERSION}.{user_id}.{expires}"
        return f"{body}.{self._sign(body)}", expires

    def verify(self, token: object, now: float) -> int:
        """The user id the token was issued to; raises TokenRejected otherwise."""
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
            raise TokenRejected("token is missing")
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            raise TokenRejected("token is malformed")
        version, user, expires, signature = parts
        if not (user.isdigit() and expires.isdigit()):
            raise TokenRejected("token is malformed")
        expected = self._sign(f"{version}.{user}.{expires}")
        if not hmac.compare_digest(expected, signature):
            raise TokenRejected("token signature is invalid")
        if int(expires) <= now:
            raise TokenRejected("token has expired")
        return int(user)
