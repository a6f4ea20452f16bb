"""Checking email templates before anything is stored or queued, and previewing them.

The three parts of a message template (subject, HTML, text) are checked for size and syntax
when saved (`check_fields`), previewed with sample variables as a mailer would render them
(`render_preview`), and trial-rendered when a job is created with its shared variables and
its first recipient's data (`job_template_problems`), so a template that breaks a rendering
limit is refused with the field named instead of failing every recipient later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.errors import FieldError, raise_all
from common.templating import (
    MAX_RENDERED_CHARS,
    PREVIEW_MAX_CHARS,
    OutputTooLarge,
    TemplateError,
    render,
    validate,
)

MAX_SUBJECT_CHARS = 1000
# The template columns are TEXT, which MariaDB caps at 65,535 bytes (not characters).
MAX_BODY_BYTES = 65_535
# Syntax problems named in one field's error; the editor's live check lists them all.
MAX_ISSUES_SHOWN = 5

# What a mailer hands a template: the recipient's Moodle fields, and for intercepted IOMAD
# emails the subject and body Moodle rendered; certificates add the course and a link.
SAMPLE_VARIABLES: dict[str, Any] = {
    "firstname": "Ana",
    "lastname": "Learner",
    "email": "ana.learner@example.com",
    "username": "ana",
    "course": "Fire Safety",
    "certificate_url": "https://lms.example.com/certificates/123",
    "subject": "Your new account",
    "body": "<p>Your account is ready. Your temporary password is <b>Tmp-1234</b>.</p>",
}

# The variables a template of each job type can use, as the mailers fill them (listed in the
# template editor). Every recipient has `email`; the rest depends on where the job came from.
_PERSON = (
    ("email", "the recipient's address"),
    ("firstname", "first name"),
    ("lastname", "last name"),
)
_MOODLE_EMAIL = (
    *_PERSON,
    ("username", "Moodle username"),
    ("subject", "the subject Moodle wrote (HTML-free)"),
    ("body", "the body Moodle wrote, as HTML: use {{{body}}} so it is not escaped"),
)
JOB_VARIABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "license_allocation": _MOODLE_EMAIL,
    "user_created": _MOODLE_EMAIL,
    "bulk": (
        *_PERSON,
        ("username", "Moodle username (recipients chosen from Moodle)"),
        ("course", "the course's name (recipients: a course's learners)"),
        ("cohort", "the cohort's name (recipients: a cohort)"),
        ("department", "the department's name (recipients: a department)"),
        ("company", "the company's name (recipients from Moodle)"),
        ("…", "any other column of an uploaded CSV, by its header"),
    ),
    "scheduled_report": (
        *_PERSON,
        ("schedule", "the schedule's title"),
        ("report", "the report's title"),
        ("rows", "how many rows the file holds"),
        ("filename", "the file's name"),
        ("link", "a download link when the file is too big to attach (empty: it is attached)"),
        ("expires", "the date the link stops working (YYYY-MM-DD)"),
    ),
    "certificate": (
        *_PERSON,
        ("course", "the completed course's name"),
        ("certificate_url", "a link to the certificate (empty: it is attached instead)"),
    ),
    # A site administrator told that a scheduled task keeps failing, or recovered.
    "task_alert": (
        *_PERSON,
        ("task", "the task's name"),
        ("count", "how many runs failed in a row"),
        ("error", "the last run's error"),
        ("when", "when the last run finished (UTC)"),
    ),
    # The HR sync's summary of one run, to its notification addresses (common/hrsync/notify.py).
    "hr_sync_report": (
        ("email", "the recipient's address"),
        ("headline", "e.g. “HR sync: 3 created, 1 suspended” or “HR sync FAILED: …”"),
        ("counts", "a list of {name, value}: created, updated, suspended, unsuspended, …"),
        ("cursor_before", "where the run started in BambooHR's change feed"),
        ("cursor_after", "where the next run resumes"),
        ("duration", "how long the run took"),
        ("dry_run", "true for a dry run (nothing was changed)"),
        ("failed", "true when the run failed"),
        ("errors", "a list of {employee_id, error}, at most the first 50"),
        ("error_count", "how many errors the run had in all"),
    ),
}


@dataclass(frozen=True)
class TemplateFields:
    subject: str
    html: str
    text: str | None = None


@dataclass(frozen=True)
class Preview:
    subject: str
    html: str
    text: str | None


def template_problem(field_name: str, template: str | None) -> str | None:
    """Why ``template`` cannot be stored as ``field_name`` (subject, html, text), or None."""
    if template is None:
        return None
    if field_name == "subject" and len(template) > MAX_SUBJECT_CHARS:
        return f"at most {MAX_SUBJECT_CHARS} characters"
    if len(template.encode()) > MAX_BODY_BYTES:
        return f"at most {MAX_BODY_BYTES} bytes"
    issues = syntax_issues(template)
    if issues:
        shown = "; ".join(str(issue) for issue in issues[:MAX_ISSUES_SHOWN])
        more = len(issues) - MAX_ISSUES_SHOWN
        return shown + (f"; and {more} more" if more > 0 else "")
    try:
        validate(template)
    except TemplateError as exc:
        return str(exc)
    return None


def check_fields(fields: TemplateFields) -> None:
    """Raise FieldError for every part that is missing or cannot be stored."""
    errors = [FieldError("subject", "required")] if not fields.subject.strip() else []
    if not fields.html.strip():
        errors.append(FieldError("html", "required"))
    for name in ("subject", "html", "text"):
        problem = template_problem(name, getattr(fields, name))
        if problem:
            errors.append(FieldError(name, problem))
    raise_all(errors)


def render_parts(
    fields: TemplateFields, variables: Mapping[str, Any], *, max_chars: int = MAX_RENDERED_CHARS
) -> Preview:
    """Render as a mailer does: the HTML body escapes `{{var}}`; subject and text do not.

    The parts share one output budget of ``max_chars``. A part that cannot be rendered or
    breaks a limit raises FieldError naming it, with the template error as the reason.
    """
    rendered: dict[str, str | None] = {}
    left = max_chars
    for name in ("subject", "html", "text"):
        template = getattr(fields, name)
        if template is None:
            rendered[name] = None
            continue
        try:
            part = render(template, variables, escape_html=name == "html", max_chars=left)
        except OutputTooLarge:
            # Said with the message's limit, not what was left of it for this part.
            raise FieldError(name, str(OutputTooLarge(max_chars))) from None
        except TemplateError as exc:
            raise FieldError(name, str(exc)) from None
        rendered[name] = part
        left -= len(part)
    return Preview(
        subject=str(rendered["subject"]).strip(), html=str(rendered["html"]), text=rendered["text"]
    )


def render_preview(fields: TemplateFields, variables: Mapping[str, Any]) -> Preview:
    """The template editor's preview; FieldError naming the part that breaks a limit."""
    check_fields(fields)
    return render_parts(fields, variables, max_chars=PREVIEW_MAX_CHARS)


def job_template_problems(
    subject: str, html: str, text: str | None, variables: Mapping[str, Any]
) -> list[FieldError]:
    """What is wrong with a new job's templates, tried with one recipient's variables."""
    errors = []
    for name, template in (("subject", subject), ("html", html), ("text", text)):
        problem = template_problem(name, template)
        if problem:
            errors.append(FieldError(name, problem))
    if errors:
        return errors
    try:
        render_parts(TemplateFields(subject, html, text), variables)
    except FieldError as exc:
        return exc.errors
    return []


# -- syntax, with positions -----------------------------------------------------------------
# chevron accepts some broken templates without a word: in `<p>Hi {{firstname}</p> {{#x}}`
# it reads `firstname}</p> {{#x` as one variable name, renders `<p>Hi ` and drops the rest.
# This scanner reads the tags as a person would and names each problem with its line and
# column, before chevron's own parse (which still checks nesting depth and the rest).
_NAME = re.compile(r"[\w.\-]+|\.")
_SNIPPET_CHARS = 24


@dataclass(frozen=True)
class SyntaxIssue:
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message}


def syntax_issues(template: str) -> list[SyntaxIssue]:
    """Every tag problem of ``template`` in order: unclosed or malformed tags, bad names,
    sections closed in the wrong order or never closed, unsupported partials."""
    issues: list[SyntaxIssue] = []
    sections: list[tuple[str, int]] = []  # open sections: name, offset of their tag
    opener, closer = "{{", "}}"
    pos = 0

    def issue(offset: int, message: str) -> None:
        line = template.count("\n", 0, offset) + 1
        column = offset - (template.rfind("\n", 0, offset) + 1) + 1
        issues.append(SyntaxIssue(line, column, message))

    def snippet(offset: int, end: int) -> str:
        text = template[offset:end].splitlines()[0] if template[offset:end] else ""
        return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "…"

    while (start := template.find(opener, pos)) >= 0:
        triple = opener == "{{" and template.startswith("{{{", start)
        inner = start + len(opener) + (1 if triple else 0)
        end_mark = "}}}" if triple else closer
        end = template.find(end_mark, inner)
        following = template.find(opener, inner)
        if end < 0 or 0 <= following < end:
            shown = snippet(start, following if following >= 0 else len(template))
            where = "before the next tag" if following >= 0 else "before the end"
            issue(start, f"the tag '{shown.rstrip()}' is not closed with '{end_mark}' {where}")
            if following < 0:
                break
            pos = following
            continue
        pos = end + len(end_mark)
        content = template[inner:end].strip()
        tag = template[start:pos]
        if triple:
            kind, name = "variable", content
        elif not content:
            issue(start, f"empty tag '{tag}'")
            continue
        elif content[0] == "!":
            continue  # a comment
        elif content[0] == "=":
            delimiters = content[1:-1].split() if content.endswith("=") else []
            if len(delimiters) != 2 or any("=" in d for d in delimiters):
                issue(start, f"'{tag}' should set two delimiters, as in '{{{{=<% %>=}}}}'")
            else:
                opener, closer = delimiters
            continue
        elif content[0] == ">":
            issue(start, f"partials ('{tag}') are not supported")
            continue
        elif content[0] in "#^/&":
            kind, name = content[0], content[1:].strip()
        else:
            kind, name = "variable", content
        if not _NAME.fullmatch(name):
            shown = name if len(name) <= _SNIPPET_CHARS else name[:_SNIPPET_CHARS] + "…"
            issue(start, f"'{shown}' in '{snippet(start, pos)}' is not a variable name"
                  if name else f"'{tag}' needs a name")  # fmt: skip
            continue
        if kind in "#^":
            sections.append((name, start))
        elif kind == "/":
            if not sections:
                issue(start, f"'{tag}' closes a section that was not opened")
            elif sections[-1][0] != name:
                open_name, open_at = sections[-1]
                line = template.count("\n", 0, open_at) + 1
                issue(start, f"'{tag}' closes a section that was not opened here: "
                      f"'{open_name}' (line {line}) is the one open")  # fmt: skip
                if any(n == name for n, _ in sections):  # closes an outer one: unwind to it
                    while sections and sections[-1][0] != name:
                        sections.pop()
                    sections.pop()
            else:
                sections.pop()
    for name, open_at in sections:
        issue(open_at, f"the section '{name}' was never closed (add '{{{{/{name}}}}}')")
    issues.sort(key=lambda i: (i.line, i.column))
    return issues
