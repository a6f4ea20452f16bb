"""Per-company Mustache email templates: which one applies to each job type, and checked,
audited changes.

A company's template for a job type overrides the site-wide one (companyid 0), which
overrides the built-in default: `templates_for` reads them in that order when a job is
created, and a job keeps the templates it was created with. No Flask here: the template
editor and the JSON API both call it; checks and previews are `template_checks.py`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common.audit import record_audit
from common.errors import FieldError
from common.mail.template_checks import TemplateFields, check_fields
from common.models.mail import JOB_TYPES, CloudTemplate

SITE_WIDE = 0
# Used when neither the company nor the site has a template for a job type: intercepted IOMAD
# emails arrive rendered by Moodle, so their subject and body pass through as they are.
PASSTHROUGH = ("{{{subject}}}", "{{{body}}}")
DEFAULT_TEMPLATES: dict[str, tuple[str, str]] = {t: PASSTHROUGH for t in JOB_TYPES}
DEFAULT_TEMPLATES["certificate"] = (
    "Your certificate: {{course}}",
    "<p>Dear {{firstname}},</p><p>Congratulations on completing {{course}}.</p>"
    '{{#certificate_url}}<p><a href="{{certificate_url}}">Download your certificate</a>'
    "</p>{{/certificate_url}}{{^certificate_url}}<p>Your certificate is attached.</p>"
    "{{/certificate_url}}",
)

DEFAULT_TEMPLATES["scheduled_report"] = (
    "{{schedule}}",
    "<p>Hello {{firstname}},</p><p>Here is your scheduled report <b>{{report}}</b> "
    "({{rows}} rows).</p>"
    '{{#link}}<p>The file is too big to attach: <a href="{{link}}">download {{filename}}</a> '
    "(the link works until {{expires}}).</p>{{/link}}"
    "{{^link}}<p>It is attached as {{filename}}.</p>{{/link}}"
    "<p>You receive it because you are on the schedule “{{schedule}}”.</p>",
)


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


def templates_for(session: Session, company_id: int, job_type: str) -> tuple[str, str, str | None]:
    """(subject, html, text) for a job type: the company's, else the site's, else built in."""
    rows = session.scalars(
        select(CloudTemplate).where(
            CloudTemplate.companyid.in_((company_id, SITE_WIDE)), CloudTemplate.jobtype == job_type
        )
    ).all()
    chosen = sorted(rows, key=lambda r: r.companyid != company_id)
    if chosen:
        return chosen[0].subject, chosen[0].html, chosen[0].text
    subject, html = DEFAULT_TEMPLATES.get(job_type, PASSTHROUGH)
    return subject, html, None


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
        raise FieldError("type", f"must be one of {', '.join(JOB_TYPES)}")
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
