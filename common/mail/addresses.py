"""Syntax check of recipient addresses before they reach a provider.

SES and Mailgun reject a whole multi-recipient request for one malformed address without
saying which, so catching the obvious cases here saves a round of isolating it. Only plain
ASCII addresses pass: none of the providers accepts a non-ASCII local part, and SES wants
internationalised domains in their punycode form.
"""

from __future__ import annotations

import re

_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def address_problem(address: str) -> str | None:
    """Why ``address`` cannot be sent to, or None when it looks deliverable."""
    if not address.isascii():
        return "non-ASCII address (encode the domain as punycode)"
    if len(address) > 254:
        return "longer than 254 characters"
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "missing '@' or the part before it"
    if len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        return "invalid part before '@'"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return "invalid domain"
    return None
