"""Where a composed job's recipients come from: a pasted list, an uploaded CSV file, or people
chosen in Moodle (a course's learners, a cohort, the whole company, a department).

Moodle people are read only through the tenancy layer: the course, cohort or department must
be one the scope can see (else `TenantViolation`, an audited 403), and the people are the
scope's own (`scoped()` keeps them to the company's members). Deleted and suspended accounts,
and members suspended in the company, are never recipients; nor are addresses the providers
would refuse (counted as skipped, not errors: the list comes from Moodle, not from the user).
A person is listed once even when several rows name them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, select

from common.errors import FieldError, raise_all
from common.mail.addresses import address_problem
from common.mail.recipients import (
    MAX_LINE_ERRORS,
    MAX_RECIPIENTS,
    RecipientSpec,
    parse_recipient_lines,
)
from common.moodle import MoodleSource
from common.reports.learners import SITE_COURSE_ID, active_enrolments
from common.tenancy import TenantScope, TenantViolation, scoped

PASTE, CSV_FILE, COURSE, COHORT, COMPANY, DEPARTMENT = (
    "paste", "csv", "course", "cohort", "company", "department"
)  # fmt: skip
SOURCES: dict[str, str] = {
    PASTE: "Pasted list",
    CSV_FILE: "CSV file",
    COURSE: "Learners of a course",
    COHORT: "Members of a cohort",
    COMPANY: "Everyone in the company",
    DEPARTMENT: "A department (and the ones below it)",
}
MOODLE_SOURCES = (COURSE, COHORT, COMPANY, DEPARTMENT)
# A CSV of 50,000 rows with a few columns is about 3 MB; past this it is not an address list.
MAX_CSV_BYTES = 5 * 1024 * 1024
CHOICES_MAX = 1000  # a select longer than this is no use
_HEADER_EMAIL = {"email", "e-mail", "mail", "email address", "e-mail address", "emailaddress"}


@dataclass(frozen=True)
class RecipientList:
    """The recipients of one source, each address once, and what was left out on the way."""

    recipients: list[RecipientSpec]
    duplicates: int = 0
    skipped: list[str] = field(default_factory=list)  # why Moodle people were left out

    def as_json(self) -> dict[str, Any]:
        return {"count": len(self.recipients), "duplicates": self.duplicates,
                "skipped": len(self.skipped), "skipped_examples": self.skipped[:5]}  # fmt: skip


def unique(recipients: Iterable[RecipientSpec], skipped: Sequence[str] = ()) -> RecipientList:
    """Each address once (the first row wins), compared without case."""
    seen: set[str] = set()
    kept: list[RecipientSpec] = []
    duplicates = 0
    for spec in recipients:
        key = spec.email.strip().lower()
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        kept.append(spec)
    return RecipientList(kept, duplicates, list(skipped))


# -- pasted and uploaded lists ---------------------------------------------------------------


def pasted(raw: str, *, field_name: str = "recipients") -> RecipientList:
    return unique(parse_recipient_lines(raw, field=field_name))


def parse_recipient_csv(
    data: bytes, *, field_name: str = "csv", limit: int = MAX_RECIPIENTS
) -> RecipientList:
    """Recipients from a CSV file: one a row, its address in the `email` column.

    With a header row (a cell named email, e-mail or mail, and no address in it) every other
    column becomes a template variable named by its header (`First name` → `first_name`);
    without one the address is the first column and the next two are firstname and lastname,
    as in a pasted list. Comma, semicolon or tab separated, UTF-8 (with or without BOM) or
    Windows-1252. Every bad row is named by its line number (FieldErrors).
    """
    if len(data) > MAX_CSV_BYTES:
        raise FieldError(field_name, f"the file is larger than {MAX_CSV_BYTES // 1024 // 1024} MB")
    text = _decode(data)
    if not text.strip():
        raise FieldError(field_name, "the file is empty")
    rows = csv.reader(io.StringIO(text, newline=""), dialect=_dialect(text))
    errors: list[FieldError] = []
    recipients: list[RecipientSpec] = []
    columns: list[str] | None = None
    email_at = 0
    try:
        for cells in rows:
            line = rows.line_num
            cells = [cell.strip() for cell in cells]
            if not any(cells):
                continue
            if columns is None:  # the first row: a header, or already a recipient
                header = _header(cells)
                if header is not None:
                    columns, email_at, problems = header
                    errors += [FieldError(field_name, f"line {line}: {p}") for p in problems]
                    continue
                columns = ["email", "firstname", "lastname"]
            if len(recipients) >= limit:
                errors.append(
                    FieldError(field_name, f"more than {limit} rows: at most {limit} a job")
                )
                break
            spec, problem = _row(cells, columns, email_at)
            if problem:
                errors.append(FieldError(field_name, f"line {line}: {problem}"))
            elif spec is not None:
                recipients.append(spec)
    except csv.Error as exc:
        errors.append(FieldError(field_name, f"line {rows.line_num}: not readable as CSV ({exc})"))
    if len(errors) > MAX_LINE_ERRORS:
        more = len(errors) - MAX_LINE_ERRORS
        errors = [
            *errors[:MAX_LINE_ERRORS],
            FieldError(field_name, f"{more} more lines like these"),
        ]
    if not errors and not recipients:
        errors.append(FieldError(field_name, "no recipients in the file"))
    raise_all(errors)
    return unique(recipients)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # what Excel writes on Windows


def _dialect(text: str) -> type[csv.Dialect]:
    """Comma, semicolon (Excel in many locales) or tab: the one the first line uses most."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(",;\t", key=first.count) if any(d in first for d in ",;\t") else ","

    class Dialect(csv.excel):
        pass

    Dialect.delimiter = delimiter
    return Dialect


def variable_name(header: str) -> str:
    """A header as a Mustache variable name: `First name` → `first_name`."""
    return re.sub(r"[^a-z0-9_]+", "_", header.strip().lower()).strip("_")


def _header(cells: list[str]) -> tuple[list[str], int, list[str]] | None:
    """(variable per column, index of the address column, problems) if ``cells`` is a header."""
    lowered = [cell.lower() for cell in cells]
    if any("@" in cell for cell in cells) or not any(c in _HEADER_EMAIL for c in lowered):
        return None
    email_at = next(i for i, c in enumerate(lowered) if c in _HEADER_EMAIL)
    names = [variable_name(cell) for cell in cells]
    names[email_at] = "email"
    problems = []
    seen: set[str] = set()
    for index, name in enumerate(names):
        if index != email_at and not name:
            names[index] = ""  # an unnamed column is ignored
        elif name in seen:
            problems.append(f"two columns are named {name!r}")
        seen.add(name)
    return names, email_at, problems


def _row(
    cells: list[str], columns: list[str], email_at: int
) -> tuple[RecipientSpec | None, str | None]:
    address = cells[email_at] if email_at < len(cells) else ""
    if not address:
        return None, "no address in the email column"
    problem = address_problem(address)
    if problem:
        return None, f"{address[:60]!r}: {problem}"
    if len(cells) > len(columns) and any(cells[len(columns) :]):
        return None, f"{len(cells)} cells, but the header names {len(columns)} columns"
    data = {name: value for name, value in zip(columns, cells, strict=False)
            if name and name != "email" and value}  # fmt: skip
    return RecipientSpec(email=address, data=data), None


# -- Moodle people ----------------------------------------------------------------------------


def moodle_choices(source: MoodleSource, scope: TenantScope) -> dict[str, list[tuple[int, str]]]:
    """(id, name) of the courses, cohorts and departments this scope may send to."""
    with source.engine.connect() as conn:
        return {
            kind: [(int(r[0]), str(r[1])) for r in conn.execute(_choices(source, scope, kind))]
            for kind in (COURSE, COHORT, DEPARTMENT)
        }


def _choices(source: MoodleSource, scope: TenantScope, kind: str) -> Select:  # type: ignore[type-arg]
    t = source.tables
    if kind == COURSE:
        query = select(t.course.c.id, t.course.c.fullname).where(t.course.c.id != SITE_COURSE_ID)
        query = query.order_by(t.course.c.fullname, t.course.c.id)
    elif (
        kind == COHORT
    ):  # site-wide rows: offered when a member is in scope (the filter bar's rule)
        members = select(t.cohort_members.c.cohortid)  # scoped with the whole query
        query = select(t.cohort.c.id, t.cohort.c.name).where(t.cohort.c.id.in_(members))
        query = query.order_by(t.cohort.c.name, t.cohort.c.id)
    else:
        d = t.department
        query = select(d.c.id, d.c.name).order_by(d.c.name, d.c.id)
    return scoped(query.limit(CHOICES_MAX), scope, source)  # type: ignore[no-any-return]


def moodle_recipients(
    source: MoodleSource,
    scope: TenantScope,
    kind: str,
    object_id: int | None,
    *,
    now: float,
    limit: int = MAX_RECIPIENTS,
) -> RecipientList:
    """The people of a course (active learners), cohort, the scope's company or a department
    (with the departments below it), with their names as template variables.

    A course, cohort or department outside the scope raises TenantViolation; more than
    ``limit`` people raise FieldError.
    """
    if scope.company_id is None:
        raise FieldError("company", "choose one company")
    t = source.tables
    u = t.user
    with source.engine.connect() as conn:
        label_name, label = _source_label(conn, source, scope, kind, object_id)
        members = _members(source, scope, kind, object_id, now, conn)
        query = (
            select(u.c.id, u.c.email, u.c.firstname, u.c.lastname, u.c.username)
            .where(u.c.id.in_(members), u.c.deleted == 0, u.c.suspended == 0)
            .order_by(u.c.id)
            .limit(limit + 1)
        )
        rows = conn.execute(scoped(query, scope, source)).all()
    if len(rows) > limit:
        raise FieldError(kind, f"more than {limit} people: at most {limit} a job")
    people: list[RecipientSpec] = []
    skipped: list[str] = []
    for row in rows:
        email = str(row.email or "").strip()
        problem = address_problem(email) if email else "no address"
        if problem:
            skipped.append(f"{row.username}: {problem}")
            continue
        data = {"firstname": row.firstname or "", "lastname": row.lastname or "",
                "username": row.username or "", label_name: label}  # fmt: skip
        people.append(RecipientSpec(email=email, data=data, userid=int(row.id)))
    return unique(people, skipped)


def _source_label(  # type: ignore[no-untyped-def]
    conn, source: MoodleSource, scope: TenantScope, kind: str, object_id: int | None
) -> tuple[str, str]:
    """("course", its name) and so on: what the chosen group is called, checked in scope."""
    t = source.tables
    if kind == COMPANY:
        query = select(t.company.c.name).where(t.company.c.id == scope.company_id)
    else:
        if object_id is None:
            raise FieldError(kind, f"choose a {kind}")
        found = {row[0]: row[1] for row in conn.execute(_choices(source, scope, kind).limit(None)
                 .where(_id_column(source, kind) == object_id))}  # fmt: skip
        if object_id not in found:
            raise TenantViolation(
                scope.company_id, f"{kind} {object_id} is not one of your company's"
            )
        return kind, str(found[object_id])
    return kind, str(conn.scalar(scoped(query, scope, source)) or "")


def _id_column(source: MoodleSource, kind: str):  # type: ignore[no-untyped-def]
    t = source.tables
    return {COURSE: t.course.c.id, COHORT: t.cohort.c.id, DEPARTMENT: t.department.c.id}[kind]


def _members(  # type: ignore[no-untyped-def]
    source: MoodleSource, scope: TenantScope, kind: str, object_id: int | None, now: float, conn
) -> Select:  # type: ignore[type-arg]
    """The user ids of the chosen group (the caller keeps them to people in scope)."""
    t = source.tables
    cu = t.company_users
    if kind == COURSE:
        enrolled = active_enrolments(t, int(now)).subquery("enrolled")
        return select(enrolled.c.userid).where(enrolled.c.courseid == object_id)
    if kind == COHORT:
        return select(t.cohort_members.c.userid).where(t.cohort_members.c.cohortid == object_id)
    member = and_(cu.c.companyid == scope.company_id, cu.c.suspended == 0)
    if kind == COMPANY:
        return select(cu.c.userid).where(member)
    if kind == DEPARTMENT:
        assert object_id is not None
        departments = _department_tree(conn, source, scope, object_id)
        return select(cu.c.userid).where(member, cu.c.departmentid.in_(sorted(departments)))
    raise FieldError("source", f"must be one of {', '.join(SOURCES)}")


def _department_tree(  # type: ignore[no-untyped-def]
    conn, source: MoodleSource, scope: TenantScope, top: int
) -> set[int]:
    """``top`` and the departments below it, within the company."""
    d = source.tables.department
    children: dict[int, list[int]] = {}
    query = scoped(select(d.c.id, d.c.parent).where(d.c.company == scope.company_id), scope, source)
    for dept, parent in conn.execute(query):
        children.setdefault(int(parent), []).append(int(dept))
    found: set[int] = set()
    stack = [top]
    while stack:
        dept = stack.pop()
        if dept not in found:
            found.add(dept)
            stack.extend(children.get(dept, ()))
    return found
