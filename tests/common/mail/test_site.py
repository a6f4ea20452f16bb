"""The site-level mail settings: endpoint overrides for test doubles, private SMTP hosts."""

from __future__ import annotations

import pytest

from common.mail.site import MailSite
from common.settings import SettingsError
from tests.support import make_settings

VARIABLES = (
    "MAIL_SES_ENDPOINT_URL", "MAIL_SENDGRID_BASE_URL", "MAIL_MAILGUN_BASE_URL",
    "MAIL_AWS_ENDPOINT_URL",
)  # fmt: skip


def test_by_default_nothing_is_overridden_and_private_hosts_are_refused(tmp_path):
    assert MailSite.from_settings(make_settings(tmp_path)) == MailSite()


def test_the_site_points_providers_at_test_doubles(tmp_path):
    settings = make_settings(
        tmp_path,
        MAIL_SES_ENDPOINT_URL="http://127.0.0.1:5000",
        MAIL_SENDGRID_BASE_URL="http://127.0.0.1:5001/",
        MAIL_MAILGUN_BASE_URL="https://mailgun.test.example",
        MAIL_AWS_ENDPOINT_URL="http://127.0.0.1:5000",
        MAIL_SMTP_ALLOW_PRIVATE_HOSTS="true",
    )

    assert MailSite.from_settings(settings) == MailSite(
        ses_endpoint_url="http://127.0.0.1:5000",
        sendgrid_base_url="http://127.0.0.1:5001",
        mailgun_base_url="https://mailgun.test.example",
        aws_endpoint_url="http://127.0.0.1:5000",
        allow_private_smtp_hosts=True,
    )


@pytest.mark.parametrize("name", VARIABLES)
@pytest.mark.parametrize("value", ["ftp://x.example", "127.0.0.1:5000", "http://", "http://a b"])
def test_a_bad_url_names_the_variable(tmp_path, name, value):
    with pytest.raises(SettingsError, match=name):
        make_settings(tmp_path, **{name: value})


def test_a_bad_boolean_names_the_variable(tmp_path):
    with pytest.raises(SettingsError, match="MAIL_SMTP_ALLOW_PRIVATE_HOSTS"):
        make_settings(tmp_path, MAIL_SMTP_ALLOW_PRIVATE_HOSTS="sometimes")


def test_a_site_admins_permission_for_one_company_adds_to_the_site(tmp_path):
    assert MailSite().for_company(True).allow_private_smtp_hosts
    assert not MailSite().for_company(False).allow_private_smtp_hosts
