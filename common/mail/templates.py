"""Per-company Mustache email templates: which one applies to each job type, checked and
audited changes, and previews.

A company's template for a job type overrides the site-wide one (companyid 0), which
overrides the built-in default: `common.mail.jobs.templates_for` reads them in that order
when a job is created, and a job keeps the templates it was created with. No Flask here: the
routes in `template_editor.py` and the JSON API both call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common.audit import record_audit
from common.mail.jobs import DEFAULT_TEMPLATES, PASSTHROUGH
from common.models.mail import JOB_TYPES, CloudTemplate
from common.templating import TemplateError, render, validate

SITE_WIDE = 0
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


class TemplateInvalid(ValueError):
    """Field-by-field reasons a template cannot be saved or previewed."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors))
        self.errors = errors


@dataclass(frozen=True)
class TemplateFields:
    subject: str
    html: str
    text: str | None = None


@dataclass(frozen=True)
class EffectiveTemplate:
    """What a new job of ``job_type`` in a company gets, and where it comes from."""

    job_type: str
    origin: str  # "company", "site" or "built-in"
    fields: TemplateFields

    @property
    def passthrough(self) -> bool:
        """Intercepted IOMAD emails pass through as Moodle wrote them."""
        return (self.fields.subject, self.fields.html) == PASSTHROUGH


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
    errors = [("subject", "required")] if not fields.subject.strip() else []
    if not fields.html.strip():
        errors.append(("html", "required"))
    for name in ("subject", "html", "text"):
        problem = template_problem(name, getattr(fields, name))
        if problem:
            errors.append((name, problem))
    if errors:
        raise TemplateInvalid(errors)


def effective_templates(session: Session, company_id: int) -> list[EffectiveTemplate]:
    """One entry per job type, in the order of JOB_TYPES."""
    rows = session.scalars(
        select(CloudTemplate).where(CloudTemplate.companyid.in_({company_id, SITE_WIDE}))
    ).all()
    by_key = {(row.companyid, row.jobtype): row for row in rows}
    result = []
    for job_type in JOB_TYPES:
        own = by_key.get((company_id, job_type))
        site = by_key.get((SITE_WIDE, job_type))
        if own is not None:
            result.append(EffectiveTemplate(job_type, "company", _fields(own)))
        elif site is not None:
            result.append(EffectiveTemplate(job_type, "site", _fields(site)))
        else:
            subject, html = DEFAULT_TEMPLATES.get(job_type, PASSTHROUGH)
            result.append(EffectiveTemplate(job_type, "built-in", TemplateFields(subject, html)))
    return result


def effective_template(session: Session, company_id: int, job_type: str) -> EffectiveTemplate:
    return next(t for t in effective_templates(session, company_id) if t.job_type == job_type)


def save_template(
    session: Session,
    company_id: int,
    job_type: str,
    fields: TemplateFields,
    *,
    actor_id: int,
    ip: str | None = None,
) -> bool:
    """Create or replace the company's template for ``job_type``; True if created. Audited."""
    if job_type not in JOB_TYPES:
        raise TemplateInvalid([("type", f"must be one of {', '.join(JOB_TYPES)}")])
    check_fields(fields)
    row = session.scalar(
        select(CloudTemplate).where(
            CloudTemplate.companyid == company_id, CloudTemplate.jobtype == job_type
        )
    )
    created = row is None
    if row is None:
        row = CloudTemplate(companyid=company_id, jobtype=job_type)
        session.add(row)
    changed = [n for n in ("subject", "html", "text") if getattr(row, n) != getattr(fields, n)]
    row.subject, row.html, row.text = fields.subject, fields.html, fields.text
    session.flush()
    _audit(session, "email_template_created" if created else "email_template_updated", row,
           actor_id=actor_id, ip=ip, details={"changed": changed})  # fmt: skip
    return created


def delete_template(
    session: Session, company_id: int, job_type: str, *, actor_id: int, ip: str | None = None
) -> bool:
    """Remove the company's own template (the site's or the built-in one applies again)."""
    row = session.scalar(
        select(CloudTemplate).where(
            CloudTemplate.companyid == company_id, CloudTemplate.jobtype == job_type
        )
    )
    if row is None:
        return False
    _audit(session, "email_template_deleted", row, actor_id=actor_id, ip=ip)
    session.execute(delete(CloudTemplate).where(CloudTemplate.id == row.id))
    return True


def render_preview(fields: TemplateFields, variables: Mapping[str, Any]) -> Preview:
    """Render as a mailer would: the HTML body escapes `{{var}}`; subject and text do not."""
    check_fields(fields)
    return Preview(
        subject=render(fields.subject, variables, escape_html=False).strip(),
        html=render(fields.html, variables),
        text=None if fields.text is None else render(fields.text, variables, escape_html=False),
    )


def _fields(row: CloudTemplate) -> TemplateFields:
    return TemplateFields(row.subject, row.html, row.text)


def _audit(
    session: Session,
    action: str,
    row: CloudTemplate,
    *,
    actor_id: int,
    ip: str | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    site_wide = row.companyid == SITE_WIDE
    record_audit(
        session, actor_id=actor_id, action=action, object_type="cloud_template",
        object_id=f"{row.companyid}:{row.jobtype}",
        company_id=None if site_wide else row.companyid, ip=ip,
        details={"jobtype": row.jobtype, "site_wide": site_wide, **dict(details or {})},
    )  # fmt: skip
