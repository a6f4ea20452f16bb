"""Where mail may go, as the site (not a company) decides it.

Provider endpoints are fixed (SES by region, SendGrid's and Mailgun's API hosts); the site can
point them at test doubles with MAIL_SES_ENDPOINT_URL, MAIL_SENDGRID_BASE_URL,
MAIL_MAILGUN_BASE_URL and MAIL_AWS_ENDPOINT_URL (the cloud path's SQS and S3), and allow SMTP
hosts on private networks with MAIL_SMTP_ALLOW_PRIVATE_HOSTS. No company setting can.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from common.settings import Settings


@dataclass(frozen=True)
class MailSite:
    ses_endpoint_url: str | None = None
    sendgrid_base_url: str | None = None
    mailgun_base_url: str | None = None
    aws_endpoint_url: str | None = None
    allow_private_smtp_hosts: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> MailSite:
        return cls(
            ses_endpoint_url=settings.mail_ses_endpoint_url,
            sendgrid_base_url=settings.mail_sendgrid_base_url,
            mailgun_base_url=settings.mail_mailgun_base_url,
            aws_endpoint_url=settings.mail_aws_endpoint_url,
            allow_private_smtp_hosts=settings.mail_smtp_allow_private_hosts,
        )

    def for_company(self, allows_private_smtp_host: bool) -> MailSite:
        """With the company's own permission (set by a site admin) added to the site's."""
        if not allows_private_smtp_host:
            return self
        return replace(self, allow_private_smtp_hosts=True)
