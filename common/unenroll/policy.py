"""The auto-unenroll policy: one row (`lms_unenroll_policy`, id POLICY_ROW), off and in dry-run
until an administrator says otherwise. Saving checks every field at once (FieldErrors naming
each bad one) and is audited as `unenroll_policy_saved` with what changed."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from common.audit import record_audit
from common.errors import FieldError, raise_all
from common.mail.addresses import address_problem
from common.models.base import utcnow
from common.models.identity import POLICY_ROW, UnenrollPolicy

SAVED_ACTION = "unenroll_policy_saved"
OBJECT_TYPE = "unenroll_policy"
MAX_GRACE_DAYS = 3650
DEFAULT_GRACE_DAYS = 7
DEFAULT_SHARE = 0.20
# The LMSs the identity map knows by name; a configured one only has to look like a name.
KNOWN_SOURCES = ("canvas", "moodle", "blackboard")
MOODLE_SOURCE = "moodle"
_SOURCE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,49}")
FIELDS = (
    "enabled",
    "dry_run",
    "grace_days",
    "max_remove_share",
    "sources",
    "protected_domains",
    "protected_emails",
)
LIST_FIELDS = ("sources", "protected_domains", "protected_emails")


@dataclass(frozen=True)
class Policy:
    enabled: bool = False
    dry_run: bool = True
    grace_days: int = DEFAULT_GRACE_DAYS
    protected_domains: tuple[str, ...] = ()
    protected_emails: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # (): every source
    max_remove_share: float = DEFAULT_SHARE
    modifiedby: int | None = None
    timemodified: Any = None

    def covers(self, source: str) -> bool:
        return not self.sources or source in self.sources

    def protection(self, *emails: str) -> str | None:
        """Why a person with these addresses is protected (case-insensitive), or None."""
        domains = {d.lower() for d in self.protected_domains}
        listed = {e.lower() for e in self.protected_emails}
        for email in emails:
            address = email.strip().lower()
            if not address:
                continue
            if address in listed:
                return f"protected email {address}"
            domain = address.rpartition("@")[2]
            if domain in domains:
                return f"protected domain {domain}"
        return None

    def as_values(self) -> dict[str, str]:
        """The form's text values."""
        return {
            "enabled": "1" if self.enabled else "",
            "dry_run": "1" if self.dry_run else "",
            "grace_days": str(self.grace_days),
            "max_remove_share": f"{round(self.max_remove_share * 100, 4):g}%",
            "sources": "\n".join(self.sources),
            "protected_domains": "\n".join(self.protected_domains),
            "protected_emails": "\n".join(self.protected_emails),
        }


def _lines(text: str | None) -> tuple[str, ...]:
    return tuple(line.strip() for line in (text or "").splitlines() if line.strip())


def load_policy(session: Session) -> Policy:
    row = session.get(UnenrollPolicy, POLICY_ROW)
    if row is None:
        return Policy()
    return Policy(
        enabled=bool(row.enabled),
        dry_run=True if row.dry_run is None else bool(row.dry_run),
        grace_days=DEFAULT_GRACE_DAYS if row.grace_days is None else int(row.grace_days),
        protected_domains=_lines(row.protected_domains),
        protected_emails=_lines(row.protected_emails),
        sources=_lines(row.sources),
        max_remove_share=DEFAULT_SHARE
        if row.max_remove_share is None
        else float(row.max_remove_share),
        modifiedby=row.modifiedby,
        timemodified=row.timemodified,
    )


# --- checks -------------------------------------------------------------------------------


def parse_grace_days(raw: str, field: str = "grace_days") -> int:
    text = raw.strip()
    if not text.isascii() or not text.isdigit():
        raise FieldError(field, f"{raw[:40]!r} is not a whole number of days")
    value = int(text)
    if value > MAX_GRACE_DAYS:
        raise FieldError(field, f"{value} is outside 0..{MAX_GRACE_DAYS}")
    return value


def parse_share(raw: str, field: str = "max_remove_share") -> float:
    """0..1, or a percentage: "20%" is 0.20."""
    text = raw.strip()
    percent = text.endswith("%")
    try:
        value = float(text.removesuffix("%").strip())
    except ValueError:
        raise FieldError(field, f"{raw[:40]!r} is not a number (e.g. 0.2 or 20%)") from None
    if percent:
        value /= 100
    if not 0 <= value <= 1:  # also refuses nan
        raise FieldError(field, f"{raw[:40].strip()} is outside 0..1 (0%..100%)")
    return value


def domain_problem(domain: str) -> str | None:
    problem = address_problem(f"x@{domain}")
    return None if problem is None else problem.replace("part before '@'", "domain")


def _unique(items: list[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.lower(), item)
    return tuple(seen.values())


def _parse_lines(raw: str, field: str, normalise: Callable[[str], str],
                 problem_of: Callable[[str], str | None]) -> tuple[str, ...]:  # fmt: skip
    """One entry a line, normalised; the first bad line named with its number."""
    found: list[str] = []
    for number, line in enumerate(raw.splitlines(), 1):
        entry = normalise(line.strip())
        if not entry:
            continue
        problem = problem_of(entry)
        if problem:
            raise FieldError(field, f"line {number}: {line.strip()[:80]!r}: {problem}")
        found.append(entry)
    return _unique(found)


def parse_domains(raw: str, field: str = "protected_domains") -> tuple[str, ...]:
    return _parse_lines(raw, field, lambda line: line.lstrip("@").lower(), domain_problem)


def parse_emails(raw: str, field: str = "protected_emails") -> tuple[str, ...]:
    return _parse_lines(raw, field, str.lower, address_problem)


def parse_sources(raw: str, field: str = "sources") -> tuple[str, ...]:
    found: list[str] = []
    for number, line in enumerate(raw.replace(",", "\n").splitlines(), 1):
        name = line.strip().lower()
        if not name:
            continue
        if not _SOURCE_NAME.fullmatch(name):
            raise FieldError(
                field,
                f"line {number}: {line.strip()[:80]!r} is not a source name "
                f"(e.g. {', '.join(KNOWN_SOURCES)})",
            )
        found.append(name)
    return _unique(found)


def _switch(raw: object) -> bool:
    return str(raw or "").strip().lower() in ("1", "on", "true", "yes")


def parse_policy(values: Mapping[str, str]) -> dict[str, Any]:
    """The checked columns of a submitted form; every bad field at once."""
    checked: dict[str, Any] = {
        "enabled": _switch(values.get("enabled")),
        "dry_run": _switch(values.get("dry_run")),
    }
    errors: list[FieldError] = []
    parsers = (
        ("grace_days", parse_grace_days),
        ("max_remove_share", parse_share),
        ("sources", parse_sources),
        ("protected_domains", parse_domains),
        ("protected_emails", parse_emails),
    )
    for name, parse in parsers:
        try:
            checked[name] = parse(str(values.get(name) or ""))
        except FieldError as exc:
            errors.append(exc)
    if not str(values.get("grace_days") or "").strip() and not any(
        e.field == "grace_days" for e in errors
    ):
        errors.append(FieldError("grace_days", "required (0 to 3650 days)"))
    if not str(values.get("max_remove_share") or "").strip() and not any(
        e.field == "max_remove_share" for e in errors
    ):
        errors.append(FieldError("max_remove_share", "required (e.g. 20%)"))
    raise_all(errors)
    return checked


# --- writes -------------------------------------------------------------------------------


def _row(session: Session) -> UnenrollPolicy:
    row = session.get(UnenrollPolicy, POLICY_ROW)
    if row is None:
        row = UnenrollPolicy(
            id=POLICY_ROW,
            enabled=False,
            dry_run=True,
            grace_days=DEFAULT_GRACE_DAYS,
            protected_domains="",
            protected_emails="",
            sources="",
            max_remove_share=DEFAULT_SHARE,
        )
        session.add(row)
        session.flush()
    return row


def _write(
    session: Session, new: Policy, *, actor_id: int | None, ip: str | None, via: str
) -> dict[str, list[Any]]:
    """Store `new`, audit what changed (nothing changed: no event); the changes."""
    old = load_policy(session)
    changed = {
        name: [getattr(old, name), getattr(new, name)]
        for name in FIELDS
        if getattr(old, name) != getattr(new, name)
    }
    row = _row(session)
    row.enabled, row.dry_run, row.grace_days = new.enabled, new.dry_run, new.grace_days
    row.max_remove_share = new.max_remove_share
    row.sources = "\n".join(new.sources)
    row.protected_domains = "\n".join(new.protected_domains)
    row.protected_emails = "\n".join(new.protected_emails)
    if changed:
        row.modifiedby, row.timemodified = actor_id, utcnow()
        details = {
            "via": via,
            "changed": {
                name: [list(v) if isinstance(v, tuple) else v for v in pair]
                for name, pair in changed.items()
            },
        }
        record_audit(
            session,
            actor_id=actor_id,
            action=SAVED_ACTION,
            object_type=OBJECT_TYPE,
            object_id=POLICY_ROW,
            ip=ip,
            details=details,
        )
    return changed


def save_policy(
    session: Session,
    values: Mapping[str, str],
    *,
    actor_id: int | None,
    ip: str | None = None,
    via: str = "web",
) -> dict[str, list[Any]]:
    """Check and store a submitted form; FieldError(s) and nothing stored when any is bad."""
    checked = parse_policy(values)
    old = load_policy(session)
    new = Policy(**{**_fields(old), **checked})
    return _write(session, new, actor_id=actor_id, ip=ip, via=via)


def _fields(policy: Policy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in FIELDS}


PROTECTED_KINDS = {"domain": "protected_domains", "email": "protected_emails"}


def add_protected(
    session: Session,
    kind: str,
    value: str,
    *,
    actor_id: int | None,
    ip: str | None = None,
    via: str = "web",
) -> bool:
    """Add one protected domain or email; False when it was listed already."""
    field = _kind_field(kind)
    parse = parse_domains if kind == "domain" else parse_emails
    if not value.strip():
        raise FieldError(field, "enter a domain" if kind == "domain" else "enter an address")
    if len(value.strip().splitlines()) != 1:
        raise FieldError(field, "one entry at a time")
    try:
        [entry] = parse(value, field)
    except FieldError as exc:  # one entry: its line number says nothing
        raise FieldError(field, exc.reason.removeprefix("line 1: ")) from None
    old = load_policy(session)
    listed: tuple[str, ...] = getattr(old, field)
    if entry in listed:
        return False
    new = Policy(**{**_fields(old), field: (*listed, entry)})
    return bool(_write(session, new, actor_id=actor_id, ip=ip, via=via))


def remove_protected(
    session: Session,
    kind: str,
    value: str,
    *,
    actor_id: int | None,
    ip: str | None = None,
    via: str = "web",
) -> bool:
    """Remove one protected domain or email (case-insensitive); False when it was not listed."""
    field = _kind_field(kind)
    old = load_policy(session)
    listed: tuple[str, ...] = getattr(old, field)
    kept = tuple(item for item in listed if item.lower() != value.strip().lower())
    if kept == listed:
        return False
    new = Policy(**{**_fields(old), field: kept})
    return bool(_write(session, new, actor_id=actor_id, ip=ip, via=via))


def _kind_field(kind: str) -> str:
    if kind not in PROTECTED_KINDS:
        raise FieldError("kind", "must be domain or email", status=400)
    return PROTECTED_KINDS[kind]
