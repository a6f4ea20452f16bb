"""The body of `POST /api/v1/email/jobs`, checked field by field before anything is written.

```
{"type": "bulk", "subject": "Hi {{firstname}}", "html": "<p>…</p>", "text": "…",
 "recipients": [{"email": "ana@example.com", "data": {"firstname": "Ana"}}],
 "variables": {"course": "Fire Safety"}, "company": 12}
```
`subject`/`html`/`text` may be left out: the company's template for the type applies (the
email template editor's, else the site's, else the built-in one). `variables` are shared by
every recipient; each recipient's `data` wins over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.mail.addresses import address_problem
from common.mail.recipients import MAX_RECIPIENTS, RecipientSpec

# The same checks as the compose page and create_job: one definition of a valid address
# (address_problem) and of a valid template (template_problem: syntax with line and column).
from common.mail.template_checks import template_problem
from common.models.mail import JOB_TYPES
from web.api.errors import ApiError

FIELDS = ("type", "subject", "html", "text", "recipients", "variables", "company")
RECIPIENT_FIELDS = ("email", "data", "userid")


@dataclass(frozen=True)
class EmailJobRequest:
    job_type: str
    subject: str | None
    html: str | None
    text: str | None
    recipients: list[RecipientSpec]
    variables: dict[str, Any]


def invalid(field_name: str, reason: str) -> ApiError:
    return ApiError(422, reason, field_name)


def json_object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ApiError(400, "the body must be a JSON object (Content-Type: application/json)")
    return body


def body_company(body: Mapping[str, Any]) -> int | None:
    raw = body.get("company")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise invalid("company", "must be a company id (a whole number)")
    return raw


def parse_email_job(body: Mapping[str, Any]) -> EmailJobRequest:
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise invalid(unknown[0], f"unknown field; expected {', '.join(FIELDS)}")
    job_type = body.get("type")
    if not isinstance(job_type, str) or job_type not in JOB_TYPES:
        raise invalid("type", f"must be one of {', '.join(JOB_TYPES)}")
    templates = {name: _template(body, name) for name in ("subject", "html", "text")}
    if (templates["subject"] is None) != (templates["html"] is None):
        missing = "html" if templates["html"] is None else "subject"
        raise invalid(missing, "give subject and html together, or neither for the company's")
    variables = body.get("variables", {})
    if not isinstance(variables, Mapping):
        raise invalid("variables", "must be an object")
    return EmailJobRequest(
        job_type=job_type,
        subject=templates["subject"],
        html=templates["html"],
        text=templates["text"],
        recipients=_recipients(body.get("recipients")),
        variables=dict(variables),
    )


def _template(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or (name != "text" and not value.strip()):
        raise invalid(name, "must be a non-empty string (a Mustache template)")
    if not value.strip():
        return None  # an empty text part: the message is HTML only
    problem = template_problem(name, value)
    if problem:
        raise invalid(name, problem)
    return value


def _recipients(raw: object) -> list[RecipientSpec]:
    if raw is None:
        raise invalid("recipients", "required: a list of {email, data}")
    if not isinstance(raw, list) or not raw:
        raise invalid("recipients", "must be a non-empty list of {email, data}")
    if len(raw) > MAX_RECIPIENTS:
        raise invalid("recipients", f"at most {MAX_RECIPIENTS} a job")
    return [_recipient(item, f"recipients[{i}]") for i, item in enumerate(raw)]


def _recipient(item: object, where: str) -> RecipientSpec:
    if not isinstance(item, Mapping):
        raise invalid(where, "must be an object {email, data}")
    unknown = sorted(set(item) - set(RECIPIENT_FIELDS))
    if unknown:
        raise invalid(
            f"{where}.{unknown[0]}", f"unknown field; expected {', '.join(RECIPIENT_FIELDS)}"
        )
    email = item.get("email")
    if not isinstance(email, str):
        raise invalid(f"{where}.email", "required: an email address")
    problem = address_problem(email.strip())
    if problem:
        raise invalid(f"{where}.email", problem)
    data = item.get("data", {})
    if not isinstance(data, Mapping):
        raise invalid(f"{where}.data", "must be an object of template variables")
    userid = item.get("userid")
    if userid is not None and (isinstance(userid, bool) or not isinstance(userid, int)):
        raise invalid(f"{where}.userid", "must be a Moodle user id")
    return RecipientSpec(email=email.strip(), data=dict(data), userid=userid)
