"""Ids and page numbers from untrusted text, parsed one way everywhere.

`str.isdigit()` accepts "²" and "٣", and `int()` accepts " 7", "+7" and "7_000"; a database
id column holds at most 2^63−1. Only ASCII digits, inside the bounds, get through; anything
else is a `FieldError` naming the field (HTTP 400 at the web edge, exit 2 at the CLI).
"""

from __future__ import annotations

import re

from common.errors import FieldError

MAX_ID = 2**63 - 1
MAX_PAGE = 1_000_000
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(raw: str | None, field: str, *, minimum: int = 1) -> int:
    """A database id: ASCII digits, ``minimum``..2^63−1 (0 allowed only when asked)."""
    if raw is None or not _DIGITS.fullmatch(raw) or not minimum <= int(raw) <= MAX_ID:
        raise FieldError(field, f"must be an id (a whole number from {minimum})", status=400)
    return int(raw)


def parse_optional_id(raw: str | None, field: str, *, minimum: int = 1) -> int | None:
    return None if raw is None or raw == "" else parse_id(raw, field, minimum=minimum)


def parse_page(raw: str | None, field: str = "page") -> int:
    """A 1-based page number (missing: 1), at most MAX_PAGE."""
    if raw is None or raw == "":
        return 1
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE:
        raise FieldError(field, f"must be a page number from 1 to {MAX_PAGE}", status=400)
    return int(raw)
