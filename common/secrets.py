"""Secrets at rest: provider keys and passwords are stored as Fernet tokens, shown masked.

The Fernet key is derived from SECRET_KEY with HKDF (its own `info`, so it is never the
session-signing key itself). Rotating SECRET_KEY therefore makes stored secrets unreadable:
`decrypt` raises SecretUnreadable and the admin page asks for them again.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"manireports secrets at rest v1"
MASK = "••••"


class SecretUnreadable(ValueError):
    """A stored secret that this SECRET_KEY cannot decrypt (changed key or damaged value)."""


@functools.lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())))


def encrypt(plaintext: str, secret_key: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str, secret_key: str) -> str:
    try:
        return _fernet(secret_key).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError):
        raise SecretUnreadable("stored secret cannot be decrypted with this SECRET_KEY") from None


def mask(value: str | None) -> str:
    """What a page may show of a secret: that it is set, and at most its last 4 characters
    when it is long enough that those do not give it away."""
    if not value:
        return ""
    if len(value) < 12:
        return MASK
    return MASK + value[-4:]
