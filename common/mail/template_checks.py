"""Checking email templates before anything is stored or queued, and previewing them.

The three parts of a message template (subject, HTML, text) are checked for size and syntax
when saved (`check_fields`), previewed with sample variables as a mailer would render them
(`render_preview`), and trial-rendered when a job is created with its shared variables and
its first recipient's data (`job_template_problems`), so a template that breaks a rendering
limit is refused with the field named instead of failing every recipient later.
"""

from __future__ import annotations

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
