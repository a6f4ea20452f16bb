"""Bad input, said one way everywhere: which field, and why.

Code that checks input raises `FieldError(field, reason)` — or `FieldErrors` when a whole form
was checked and several fields are wrong. Each edge renders it once: a form shows every reason
beside its field (HTTP 422, the input kept), the JSON API answers 422 with
`{"error": reason, "field": field}`, and the CLI prints `manireports: --field: reason` and exits 2.
"""

from __future__ import annotations

from collections.abc import Iterable


class FieldError(ValueError):
    """``status`` is the HTTP answer: 422 for submitted content that fails its checks, 400 for
    a malformed request (an id that is not a number, a page out of range)."""

    def __init__(self, field: str, reason: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status

    @property
    def errors(self) -> list[FieldError]:
        """Every field error this one carries (itself, for a single one)."""
        return [self]

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "error": self.reason}


class FieldErrors(FieldError):
    """Several field errors found together; the first one is also this error's field/reason."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        found = [one for error in errors for one in error.errors]
        if not found:
            raise ValueError("FieldErrors needs at least one error")
        super().__init__(found[0].field, found[0].reason, status=found[0].status)
        self._errors = found
        self.args = ("; ".join(f"{e.field}: {e.reason}" for e in found),)

    @property
    def errors(self) -> list[FieldError]:
        return list(self._errors)


def raise_all(errors: Iterable[FieldError]) -> None:
    """Raise the collected errors (one FieldError, or FieldErrors for several); none: return."""
    found = [one for error in errors for one in error.errors]
    if len(found) == 1:
        raise found[0]
    if found:
        raise FieldErrors(found)
