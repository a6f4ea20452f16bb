"""Does a provider configuration work? One cheap, authenticated call, checked when settings
are saved, so a wrong port or key is found at once and not after a job's retries.

- SMTP: connect to the host (resolved and checked by `common.mail.smtp_hosts`, the mailers'
  own SSRF rules: a private address is refused before any connection), read the greeting,
  EHLO, STARTTLS or implicit TLS as configured, and log in when a username is set; then QUIT.
  No message is sent.
- SES: GetSendQuota in the configured region (the same credentials and region serve the v1
  and v2 APIs).
- SendGrid: GET /v3/scopes (the key must hold ``mail.send``).
- Mailgun: GET /v3/domains/{domain} in the configured region.

Each call has a short timeout and follows no redirects. A failure is a FieldError on the field
most likely wrong, in fixed words: what the remote end answered is not shown (the same rule as
`common.mail.failures` — a relay's banner or an API's body could carry anything, and showing
it would let a company read internal services' answers through the form). Secrets never
appear in the messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiosmtplib
import boto3
import botocore.config
import botocore.exceptions
import requests

from common.errors import FieldError
from common.mail import smtp_hosts
from common.mail.provider_settings import MAILGUN_BASE_URLS, SENDGRID_BASE_URL
from common.mail.site import MailSite
from common.mail.smtp_hosts import HostNotAllowed, open_connection, smtp_targets

log = logging.getLogger(__name__)
TIMEOUT_S = 5.0
AUTHENTICATION_FAILED = (530, 534, 535, 538)
SES_CREDENTIAL_CODES = {
    "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
    "AccessDenied", "AccessDeniedException", "InvalidAccessKeyId", "ExpiredToken",
}  # fmt: skip


def check_connection(
    provider: str, config: Mapping[str, Any], site: MailSite, *, timeout_s: float = TIMEOUT_S
) -> list[FieldError]:
    """Every problem found by talking to the provider; empty when it answered as it should.
    ``config`` is complete and valid (secrets merged in); ``site`` carries the company's
    permission for a private SMTP host."""
    check = _CHECKS.get(provider)
    if check is None:
        return []
    try:
        return check(config, site, timeout_s)
    except Exception:  # never a 500 from a check: say so and log what happened
        log.exception("connection check of a %s configuration failed unexpectedly", provider)
        return [FieldError("provider", "the connection could not be checked (see the log)")]


# -- SMTP ---------------------------------------------------------------------------------------
def _check_smtp(config: Mapping[str, Any], site: MailSite, timeout_s: float) -> list[FieldError]:
    return asyncio.run(_smtp(config, site, timeout_s))


async def _smtp(config: Mapping[str, Any], site: MailSite, timeout_s: float) -> list[FieldError]:
    host, port = str(config["host"]), int(config.get("port") or 587)
    security = config.get("security") or "starttls"
    where = f"{host}:{port}"
    try:
        targets = await smtp_targets(host, port, allow_private=site.allow_private_smtp_hosts)
    except HostNotAllowed:
        return [FieldError("host", smtp_hosts.REFUSED)]
    except (OSError, UnicodeError):
        return [FieldError("host", f"{host} does not resolve to an address")]
    try:
        sock = await open_connection(targets, timeout_s)
    except OSError:
        return [FieldError("port", f"nothing answers at {where} within {timeout_s:g} s "
                                   "(connection refused or timed out)")]  # fmt: skip
    client = aiosmtplib.SMTP(
        hostname=host, sock=sock, use_tls=security == "tls", start_tls=security == "starttls",
        validate_certs=config.get("validate_certs", True) is not False,
        username=config.get("username") or None, password=config.get("password") or None,
        timeout=timeout_s,
    )  # fmt: skip
    try:
        await client.connect()
        if client.last_ehlo_response is None:  # no STARTTLS or login asked for one
            await client.ehlo()
    except aiosmtplib.SMTPResponseException as exc:
        if exc.code in AUTHENTICATION_FAILED:
            return [FieldError("password", "the SMTP server refused the username and password")]
        return [FieldError("host", f"the SMTP server at {where} refused the session "
                                   f"(reply {exc.code})")]  # fmt: skip
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, OSError):
        reason = (
            f"no SMTP greeting from {where} within {timeout_s:g} s "
            "(is this the SMTP port, and is the security setting right?)"
        )
        return [FieldError("port", reason)]
    except aiosmtplib.SMTPException:
        reason = (
            f"the SMTP session with {where} could not be set up as '{security}' "
            "(STARTTLS offered? certificate valid?)"
        )
        return [FieldError("security", reason)]
    finally:
        if not client.is_connected:
            sock.close()
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
    return []


# -- Amazon SES ---------------------------------------------------------------------------------
def _check_ses(config: Mapping[str, Any], site: MailSite, timeout_s: float) -> list[FieldError]:
    keys = {}
    if config.get("access_key_id"):
        keys = {"aws_access_key_id": config["access_key_id"],
                "aws_secret_access_key": config.get("secret_access_key")}  # fmt: skip
    client = boto3.session.Session().client(
        "ses", region_name=config["region"],
        endpoint_url=site.ses_endpoint_url, **keys,
        config=botocore.config.Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                                      retries={"max_attempts": 1}),
    )  # fmt: skip
    try:
        client.get_send_quota()
    except botocore.exceptions.NoCredentialsError:
        return [FieldError("access_key_id", "no AWS credentials: enter a key, or give the web "
                                            "and mailer hosts an AWS role")]  # fmt: skip
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in SES_CREDENTIAL_CODES:
            return [FieldError("secret_access_key", "AWS refused the access key")]
        return [FieldError("region", f"SES refused the check in {config['region']} ({code})")]
    except (botocore.exceptions.BotoCoreError, OSError):
        return [FieldError("region", f"SES in {config['region']} is unreachable")]
    finally:
        client.close()
    return []


# -- SendGrid and Mailgun -----------------------------------------------------------------------
def _get(url: str, timeout_s: float, **kwargs: Any) -> requests.Response | None:
    try:
        return requests.get(url, timeout=timeout_s, allow_redirects=False, **kwargs)
    except requests.RequestException:
        return None


def _check_sendgrid(
    config: Mapping[str, Any], site: MailSite, timeout_s: float
) -> list[FieldError]:
    base = site.sendgrid_base_url or SENDGRID_BASE_URL
    headers = {"Authorization": f"Bearer {config['api_key']}", "Accept": "application/json"}
    response = _get(f"{base}/v3/scopes", timeout_s, headers=headers)
    if response is None or response.status_code >= 500:
        return [FieldError("provider", "SendGrid is unreachable now; try again")]
    if response.status_code in (401, 403):
        return [FieldError("api_key", "SendGrid refused the API key")]
    if response.status_code != 200:
        return [FieldError("api_key", f"SendGrid answered {response.status_code} to the check")]
    try:
        scopes = response.json().get("scopes") or []
    except (ValueError, AttributeError):
        scopes = []
    if "mail.send" not in scopes:
        return [FieldError("api_key", "this SendGrid key may not send mail (no mail.send)")]
    return []


def _check_mailgun(config: Mapping[str, Any], site: MailSite, timeout_s: float) -> list[FieldError]:
    base = site.mailgun_base_url or MAILGUN_BASE_URLS[config.get("region") or "us"]
    domain = str(config["domain"])
    response = _get(f"{base}/v3/domains/{domain}", timeout_s, auth=("api", config["api_key"]))
    if response is None or response.status_code >= 500:
        return [FieldError("provider", "Mailgun is unreachable now; try again")]
    if response.status_code in (401, 403):
        return [FieldError("api_key", "Mailgun refused the API key")]
    if response.status_code == 404:
        return [FieldError("domain", f"Mailgun has no domain {domain} in this region")]
    if response.status_code != 200:
        return [FieldError("domain", f"Mailgun answered {response.status_code} to the check")]
    return []


_CHECKS = {"smtp": _check_smtp, "ses": _check_ses, "sendgrid": _check_sendgrid,
           "mailgun": _check_mailgun}  # fmt: skip
