"""Check a password against `user.password` the way Moodle does (NOTES.md §7).

Moodle 4.3+ stores SHA-512 crypt of password+pepper; older hashes are bcrypt `$2y$`, still
accepted by 4.3+. `not cached` marks accounts whose password lives elsewhere (LDAP, OAuth2).
"""

from __future__ import annotations

import bcrypt
from passlib.hash import sha512_crypt

NOT_CACHED = "not cached"
MAX_PASSWORD_CHARACTERS = 128  # Moodle's MAX_PASSWORD_CHARACTERS

# Verified against when the account does not exist, so both paths cost the same.
_DUMMY_HASH = sha512_crypt.using(rounds=10000, salt="manireportsdummy").hash("x")


def verify_moodle_password(password: str, stored: str, peppers: tuple[str, ...] = ()) -> bool:
    if not password or len(password) > MAX_PASSWORD_CHARACTERS or not stored:
        return False
    if stored == NOT_CACHED:
        return False
    if stored.startswith("$6$"):
        # Newest pepper first, as Moodle tries them; the empty pepper covers sites without one.
        return any(_sha512_matches(password + pepper, stored) for pepper in (*peppers, ""))
    if stored.startswith(("$2y$", "$2b$", "$2a$")):
        return _bcrypt_matches(password, stored)
    return False


def spend_equal_time(password: str) -> None:
    """Burn a verify for an unknown user, so response time does not reveal which names exist."""
    _sha512_matches(password[:MAX_PASSWORD_CHARACTERS], _DUMMY_HASH)


def _sha512_matches(candidate: str, stored: str) -> bool:
    try:
        return bool(sha512_crypt.verify(candidate, stored))
    except ValueError:
        return False


def _bcrypt_matches(password: str, stored: str) -> bool:
    # PHP writes $2y$; the bcrypt library knows the identical algorithm as $2b$.
    normalised = "$2b$" + stored[4:]
    try:
        return bool(bcrypt.checkpw(password.encode(), normalised.encode()))
    except ValueError:
        return False
