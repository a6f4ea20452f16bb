"""Moodle password hashes for demo and test users (NOTES.md §7).

Moodle 4.3+ stores SHA-512 crypt with 10,000 rounds; sites upgraded from 4.1/4.2 still hold
bcrypt `$2y$` hashes until the user's next login. Hashing thousands of users at 10,000 rounds
takes minutes, so the demo site hashes a bounded pool of (salt, hash) pairs for its one password
and hands them out in turn: every stored hash still verifies for that password.
"""

from __future__ import annotations

import random

from passlib.hash import bcrypt, sha512_crypt

DEMO_PASSWORD = "Demo-2026!"
# Literal Moodle stores for auth plugins that keep no local password (AUTH_PASSWORD_NOT_CACHED).
NOT_CACHED = "not cached"

SHA512_ROUNDS = 10_000
BCRYPT_COST = 10
_CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# The 22nd character of a bcrypt salt carries 2 bits; only these four are canonical.
_BCRYPT_LAST = ".Oeu"


def sha512_crypt_hash(password: str, salt: str, rounds: int = SHA512_ROUNDS) -> str:
    """`$6$rounds=10000$<salt16>$<86 chars>`, what Moodle 4.3+ writes."""
    return sha512_crypt.using(rounds=rounds, salt=salt).hash(password)


def bcrypt_hash(password: str, salt: str, cost: int = BCRYPT_COST) -> str:
    """`$2y$10$…` (60 chars), what PHP's password_hash() wrote in Moodle ≤ 4.2."""
    return bcrypt.using(ident="2y", rounds=cost, salt=salt).hash(password)


def sha512_salt(rng: random.Random) -> str:
    return "".join(rng.choice(_CRYPT_ALPHABET) for _ in range(16))


def bcrypt_salt(rng: random.Random) -> str:
    return "".join(rng.choice(_CRYPT_ALPHABET) for _ in range(21)) + rng.choice(_BCRYPT_LAST)


class PasswordPool:
    """A few hashes of one password, handed out cyclically by index."""

    def __init__(
        self, password: str, rng: random.Random, *, sha512_hashes: int = 32, bcrypt_hashes: int = 3
    ) -> None:
        self.password = password
        self._sha512 = [sha512_crypt_hash(password, sha512_salt(rng)) for _ in range(sha512_hashes)]
        self._bcrypt = [bcrypt_hash(password, bcrypt_salt(rng)) for _ in range(bcrypt_hashes)]

    def sha512(self, index: int) -> str:
        return self._sha512[index % len(self._sha512)]

    def bcrypt(self, index: int) -> str:
        return self._bcrypt[index % len(self._bcrypt)]
