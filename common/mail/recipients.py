"""Who a job is sent to: one recipient with their template data, and the pasted list of the
job form (`email[,firstname,lastname]` a line) read into recipients with every bad line named.

Addresses are checked here, at the edge, with the one check the providers rely on too
(`addresses.address_problem`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.errors import FieldError, raise_all
from common.mail.addresses import address_problem

MAX_RECIPIENTS = 50_000  # DESIGN: up to 50,000 recipients a job
# A form shows this many bad lines; the rest are counted in one more error.
MAX_LINE_ERRORS = 100


@dataclass(frozen=True)
class RecipientSpec:
    email: str
    data: Mapping[str, Any]
    userid: int | None = None
    source_ref: str | None = None


def parse_recipient_lines(
    raw: str, *, field: str = "recipients", limit: int = MAX_RECIPIENTS
) -> list[RecipientSpec]:
    """One recipient a line: `email` or `email,firstname,lastname`; blank lines are skipped.

    Raises FieldError (FieldErrors for several) on ``field``, each reason naming its line.
    """
    recipients: list[RecipientSpec] = []
    errors: list[FieldError] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        parts = [part.strip() for part in line.split(",")]
        if not any(parts):
            continue
        problem = address_problem(parts[0]) if parts[0] else "no address before the first comma"
        if problem:
            errors.append(FieldError(field, f"line {number} ({parts[0][:60]!r}): {problem}"))
            continue
        names = dict(zip(("firstname", "lastname"), parts[1:3], strict=False))
        recipients.append(RecipientSpec(email=parts[0], data=names))
    if len(errors) > MAX_LINE_ERRORS:
        more = len(errors) - MAX_LINE_ERRORS
        errors = [*errors[:MAX_LINE_ERRORS], FieldError(field, f"{more} more lines like these")]
    if not errors and not recipients:
        errors.append(FieldError(field, "required: one address a line"))
    if len(recipients) > limit:
        errors.append(FieldError(field, f"at most {limit} a job"))
    raise_all(errors)
    return recipients
