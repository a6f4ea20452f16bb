"""The "Email offload" admin page: one company's provider, sender, quota and offloaded events.

Secrets are write-only: the page shows them masked, and a blank secret field keeps the stored
value. Saving validates every field at once (each reason beside its field, HTTP 422, the input
kept, secrets never shown back), then — for enabled settings — checks the connection with one
cheap authenticated call to the provider (`common.mail.provider_check`; the SMTP host rules
apply), is audited, and can queue a test message. "Save without checking" skips the call (a
provider that is down for maintenance); the audit entry says whether it ran.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.access import capabilities as caps
from common.errors import FieldError
from common.mail.addresses import address_problem
from common.mail.config import (
    ALLOW_PRIVATE_SMTP_HOST,
    OFFLOADABLE_EVENTS,
    load_config,
    masked_secrets,
)
from common.mail.config_save import save_config
from common.mail.provider_check import check_connection
from common.mail.provider_settings import PROVIDER_SETTINGS
from common.mail.queue import queue_job
from common.mail.recipients import RecipientSpec
from common.mail.site import MailSite
from web.auth.guards import (
    Tenancy,
    chosen_company_id,
    current_viewer,
    signed_in,
    web_context,
)
from web.jobs.names import company_names
from web.navigation import add_nav_item

bp = Blueprint("email_offload", __name__, url_prefix="/admin/email-offload",
               template_folder="templates")  # fmt: skip
add_nav_item("Email offload", "email_offload.index", caps.MANAGE_EMAIL_OFFLOAD, group="Email")
PROVIDER_LABELS = {"ses": "AWS SES", "sendgrid": "SendGrid", "mailgun": "Mailgun", "smtp": "SMTP"}
CLOUD_FIELDS = ("aws_region", "aws_access_key_id", "callback_url")
CLOUD_SECRETS = ("aws_secret_access_key", "callback_secret")
TEST_SUBJECT = "ManiReports test message"
TEST_HTML = "<p>This is a test message from ManiReports' email offload settings.</p>"


class SettingsForm(FlaskForm):
    pass


def provider_fields() -> dict[str, list]:
    """Each provider's own settings (the sender is common to all)."""
    return {
        name: [f for f in cls.config_schema if f.name not in ("from_email", "from_name")]
        for name, cls in sorted(PROVIDER_SETTINGS.items())
    }


def _current_values(company_id: int) -> tuple[dict[str, Any], dict[str, str]]:
    ctx = web_context()
    with ctx.appdb.transaction() as session:
        config = load_config(session, company_id, ctx.settings.secret_key)
        masked = masked_secrets(session, company_id, ctx.settings.secret_key)
    if config is None:
        return {"enabled": False, "provider": "smtp", "chunk_size": 100, "rate_per_s": 0,
                "offloaded_events": [], "provider_config": {}}, {}  # fmt: skip
    values = {
        "enabled": config.enabled, "provider": config.provider,
        "sender_email": config.sender_email, "sender_name": config.sender_name or "",
        "chunk_size": config.chunk_size, "rate_per_s": config.rate_per_s,
        "offloaded_events": list(config.offloaded_events), "use_sqs": config.use_sqs,
        ALLOW_PRIVATE_SMTP_HOST: config.allow_private_smtp_host,
        "sqs_queue_url": config.sqs_queue_url or "", "s3_bucket": config.s3_bucket or "",
        "provider_config": {k: v for k, v in config.provider_config.items() if k not in masked},
        **{k: config.aws.get(k, "") for k in CLOUD_FIELDS},
    }  # fmt: skip
    return values, masked


def _render(company_id: int, values: dict, masked: dict, errors: list[FieldError],  # type: ignore[no-untyped-def]
            status: int = 200):  # fmt: skip
    by_field: dict[str, list[str]] = {}
    for error in errors:  # a provider's own field is named `provider__field` in the form
        key = error.field
        if key in {f.name for f in provider_fields().get(values.get("provider", ""), [])}:
            key = f"{values['provider']}__{key}"
        by_field.setdefault(key, []).append(error.reason)
    return render_template(
        "email_offload/index.html", company_id=company_id, values=values, masked=masked,
        errors=errors, by_field=by_field, fields=provider_fields(), labels=PROVIDER_LABELS,
        events=OFFLOADABLE_EVENTS, cloud_fields=CLOUD_FIELDS, cloud_secrets=CLOUD_SECRETS,
        form=SettingsForm(), private_host_field=ALLOW_PRIVATE_SMTP_HOST,
        company_name=company_names([company_id])[company_id],
    ), status  # fmt: skip


@bp.get("/")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def index():  # type: ignore[no-untyped-def]
    company_id = chosen_company_id()
    values, masked = _current_values(company_id)
    return _render(company_id, values, masked, [])


@bp.post("/")
@signed_in(caps.MANAGE_EMAIL_OFFLOAD, tenancy=Tenancy.MANAGE)
def save():  # type: ignore[no-untyped-def]
    company_id = chosen_company_id()
    viewer = current_viewer()
    if not SettingsForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")
    values, errors = _parse_form(request.form)
    if viewer.is_site_admin:  # the one setting a company manager may not change
        values[ALLOW_PRIVATE_SMTP_HOST] = ALLOW_PRIVATE_SMTP_HOST in request.form
    test_to = request.form.get("test_to", "").strip()
    if test_to and address_problem(test_to):
        errors.append(FieldError("test_to", str(address_problem(test_to))))
    check = None if "skip_connection_check" in request.form else check_connection
    ctx = web_context()
    try:
        with ctx.appdb.transaction() as session:
            config = save_config(session, company_id, values,
                                 secret_key=ctx.settings.secret_key,
                                 actor_id=viewer.user_id,
                                 actor_is_site_admin=viewer.is_site_admin,
                                 site=MailSite.from_settings(ctx.settings),
                                 ip=request.remote_addr, prior_errors=errors,
                                 connection_check=check)  # fmt: skip
    except FieldError as exc:
        errors = exc.errors
    if errors:
        _, masked = _current_values(company_id)
        shown = {**values, "provider_config": {k: v for k, v in values["provider_config"].items()
                                               if k not in masked}}  # fmt: skip
        shown["test_to"] = test_to
        _typed_numbers(request.form, shown, masked)
        return _render(company_id, shown, masked, errors, 422)
    checked = check is not None and config.enabled
    flash("Email offload settings saved" + (" and the connection works." if checked else "."),
          "info")  # fmt: skip
    if test_to:
        test = queue_job(
            ctx.appdb, ctx.bus_client.publish, company_id=company_id, job_type="bulk",
            source="ui", recipients=[RecipientSpec(email=test_to, data={})],
            subject=TEST_SUBJECT, html=TEST_HTML, actor_id=viewer.user_id,
            chunk_size=config.chunk_size,
        )  # fmt: skip
        flash(f"Test message queued as job {test.job_id}." if test.dispatched else
              f"Test message saved as job {test.job_id}; the mailers cannot be reached now.",
              "info" if test.dispatched else "error")  # fmt: skip
    return redirect(url_for("email_offload.index", company=company_id))


def _typed_numbers(form, shown: dict[str, Any], masked: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """Show the number fields as they were typed (a refused "abc" or "-5" comes back as it
    was, not as None or -5.0) on the form re-rendered with its errors."""
    for name in ("chunk_size", "rate_per_s"):
        shown[name] = form.get(name, "").strip()[:40]
    provider = shown["provider"]
    for spec in provider_fields().get(provider, []):
        if spec.kind in (int, float) and spec.name not in masked:
            typed = form.get(f"{provider}__{spec.name}", "")
            shown["provider_config"][spec.name] = typed.strip()[:40]


def _parse_form(form) -> tuple[dict[str, Any], list[FieldError]]:  # type: ignore[no-untyped-def]
    errors: list[FieldError] = []

    def number(name: str, kind: type) -> Any:
        raw = form.get(name, "").strip()
        try:
            return kind(raw) if raw else None
        except ValueError:
            reason = "must be a whole number" if kind is int else "must be a number"
            errors.append(FieldError(name.split("__")[-1], reason))
            return None

    provider = form.get("provider", "")
    provider_config: dict[str, Any] = {}
    for spec in provider_fields().get(provider, []):
        key = f"{provider}__{spec.name}"
        if spec.kind is bool:
            provider_config[spec.name] = key in form
        elif spec.kind in (int, float):
            value = number(key, spec.kind)
            if value is not None:
                provider_config[spec.name] = value
        else:
            provider_config[spec.name] = form.get(key, "").strip()
    values: dict[str, Any] = {
        "provider": provider,
        "enabled": "enabled" in form,
        "sender_email": form.get("sender_email", "").strip(),
        "sender_name": form.get("sender_name", "").strip(),
        "chunk_size": number("chunk_size", int),
        "rate_per_s": number("rate_per_s", float) or 0,
        "offloaded_events": [e for e in form.getlist("offloaded_events")],
        "use_sqs": "use_sqs" in form,
        "sqs_queue_url": form.get("sqs_queue_url", "").strip(),
        "s3_bucket": form.get("s3_bucket", "").strip(),
        "provider_config": provider_config,
        **{name: form.get(name, "").strip() for name in CLOUD_FIELDS + CLOUD_SECRETS},
    }
    if values["callback_secret"]:
        values["provider_config"]["callback_secret"] = values.pop("callback_secret")
    else:
        values.pop("callback_secret")
    return values, errors
