"""Saving a company's mail settings: where secrets may be sent, and who may allow private hosts."""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import FieldError
from common.mail.config import load_config
from common.mail.config_save import save_config
from common.mail.site import MailSite
from tests.support import TEST_SECRET

ACME = 11


def smtp(**fields: Any) -> dict[str, Any]:
    return {"host": "smtp.acme.example", "port": 587, "security": "starttls",
            "username": "relay", "password": "Relay-Secret-1", **fields}  # fmt: skip


def values(provider: str, provider_config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"provider": provider, "enabled": True, "sender_email": "noreply@acme.example",
            "chunk_size": 100, "rate_per_s": 0, "offloaded_events": [],
            "provider_config": provider_config, **extra}  # fmt: skip


def save(appdb, provider, provider_config, *, admin=False, site=None, **extra):  # type: ignore[no-untyped-def]
    with appdb.transaction() as session:
        return save_config(session, ACME, values(provider, provider_config, **extra),
                           secret_key=TEST_SECRET, actor_id=5, actor_is_site_admin=admin,
                           site=site)  # fmt: skip


def stored(appdb):  # type: ignore[no-untyped-def]
    with appdb.transaction() as session:
        return load_config(session, ACME, TEST_SECRET)


def errors_of(raised: pytest.ExceptionInfo[FieldError]) -> dict[str, str]:
    return {e.field: e.reason for e in raised.value.errors}


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.2", "10.0.0.5", "172.16.0.9", "192.168.0.3", "169.254.169.254",
     "::1", "fd00::25", "localhost"],
)  # fmt: skip
def test_a_company_manager_cannot_save_a_private_smtp_host(appdb, host):
    with pytest.raises(FieldError) as raised:
        save(appdb, "smtp", smtp(host=host))

    assert "private or local address" in errors_of(raised)["host"]
    assert stored(appdb) is None


def test_a_site_admin_may_allow_a_private_host_for_one_company(appdb):
    config = save(appdb, "smtp", smtp(host="10.0.0.5"), admin=True, allow_private_smtp_host=True)

    assert config.allow_private_smtp_host and config.provider_config["host"] == "10.0.0.5"


def test_the_site_setting_allows_private_hosts_everywhere(appdb):
    config = save(
        appdb, "smtp", smtp(host="127.0.0.1"), site=MailSite(allow_private_smtp_hosts=True)
    )

    assert config.provider_config["host"] == "127.0.0.1" and not config.allow_private_smtp_host


def test_a_company_manager_cannot_set_or_clear_the_flag(appdb):
    save(appdb, "smtp", smtp(host="10.0.0.5"), admin=True, allow_private_smtp_host=True)

    for wanted in (True, False):
        with pytest.raises(FieldError) as raised:
            save(appdb, "smtp", smtp(host="10.0.0.5"), allow_private_smtp_host=wanted)
        assert "site admin" in errors_of(raised)["allow_private_smtp_host"]
    # Saving without the flag (the manager's form has none) keeps the admin's choice.
    assert save(appdb, "smtp", smtp(host="10.0.0.5"), rate_per_s=5).allow_private_smtp_host
    assert stored(appdb).allow_private_smtp_host


def test_a_blank_secret_keeps_the_stored_one_while_the_host_stays(appdb):
    save(appdb, "smtp", smtp())

    save(appdb, "smtp", smtp(password=""), rate_per_s=10)

    assert stored(appdb).provider_config["password"] == "Relay-Secret-1"


@pytest.mark.parametrize(
    ("change", "setting"),
    [({"host": "smtp.elsewhere.example"}, "host"), ({"port": 2525}, "port")],
)
def test_changing_where_the_password_goes_asks_for_it_again(appdb, change, setting):
    save(appdb, "smtp", smtp())

    with pytest.raises(FieldError) as raised:
        save(appdb, "smtp", smtp(password="", **change))

    assert errors_of(raised) == {"password": f"enter it again: the {setting} changed"}
    assert stored(appdb).provider_config["host"] == "smtp.acme.example"  # nothing written
    config = save(appdb, "smtp", smtp(password="Relay-Secret-2", **change))
    assert config.provider_config["password"] == "Relay-Secret-2"


def test_a_changed_host_without_login_drops_the_old_password(appdb):
    save(appdb, "smtp", smtp())

    config = save(appdb, "smtp", smtp(host="smtp.elsewhere.example", username="", password=""))

    assert "password" not in config.provider_config


def test_changing_the_mailgun_region_asks_for_the_key_again(appdb):
    mailgun = {"api_key": "key-Secret-1", "domain": "mg.acme.example", "region": "us"}
    save(appdb, "mailgun", mailgun)

    with pytest.raises(FieldError) as raised:
        save(appdb, "mailgun", {**mailgun, "api_key": "", "region": "eu"})

    assert errors_of(raised) == {"api_key": "enter it again: the region changed"}
    assert stored(appdb).provider_config["region"] == "us"


def test_changing_the_ses_region_asks_for_the_secret_key_again(appdb):
    ses = {"region": "eu-west-1", "access_key_id": "AKIAEXAMPLE", "secret_access_key": "S3cret"}
    save(appdb, "ses", ses)

    with pytest.raises(FieldError) as raised:
        save(appdb, "ses", {**ses, "secret_access_key": "", "region": "us-east-1"})

    assert errors_of(raised) == {"secret_access_key": "enter it again: the region changed"}


def test_another_provider_never_inherits_a_stored_key(appdb):
    save(appdb, "sendgrid", {"api_key": "SG.Secret-1"})

    with pytest.raises(FieldError) as raised:
        save(appdb, "mailgun", {"api_key": "", "domain": "mg.acme.example"})

    assert errors_of(raised) == {"api_key": "enter it again: the provider changed"}


def test_changing_the_sqs_queue_asks_for_the_aws_secret_again(appdb):
    cloud = {"use_sqs": True, "aws_region": "eu-west-1", "aws_access_key_id": "AKIAEXAMPLE",
             "aws_secret_access_key": "Aws-Secret-1",
             "sqs_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/mail"}  # fmt: skip
    save(appdb, "smtp", smtp(), **cloud)
    moved = {**cloud, "aws_secret_access_key": "",
             "sqs_queue_url": "https://sqs.eu-west-1.amazonaws.com/999999999999/q"}  # fmt: skip

    with pytest.raises(FieldError) as raised:
        save(appdb, "smtp", smtp(password=""), **moved)

    assert errors_of(raised) == {
        "aws_secret_access_key": "enter it again: the sqs_queue_url changed"
    }


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data", "https://sqs.attacker.example/1/q"]
)
def test_an_sqs_queue_url_must_be_aws_unless_the_site_says_otherwise(appdb, url):
    cloud = {"use_sqs": True, "aws_region": "eu-west-1", "sqs_queue_url": url}

    with pytest.raises(FieldError) as raised:
        save(appdb, "smtp", smtp(), **cloud)
    assert "sqs_queue_url" in errors_of(raised)

    site = MailSite(aws_endpoint_url="http://127.0.0.1:5000")
    local = {**cloud, "sqs_queue_url": "http://127.0.0.1:5000/123456789012/mail"}
    assert save(appdb, "smtp", smtp(), site=site, **local).sqs_queue_url.endswith("/mail")


@pytest.mark.parametrize(
    ("provider", "setting"),
    [("sendgrid", "base_url"), ("mailgun", "base_url"), ("ses", "endpoint_url")],
)
def test_a_company_cannot_choose_where_provider_requests_go(appdb, provider, setting):
    config = {"sendgrid": {"api_key": "SG.x"},
              "mailgun": {"api_key": "k", "domain": "mg.acme.example"},
              "ses": {"region": "eu-west-1"}}[provider]  # fmt: skip

    with pytest.raises(FieldError) as raised:
        save(appdb, provider, {**config, setting: "http://10.0.0.1:8080"})

    assert errors_of(raised) == {setting: "unknown setting"}


def test_every_problem_is_reported_at_once(appdb):
    with pytest.raises(FieldError) as raised:
        save(appdb, "smtp", smtp(host="127.0.0.1"), sender_email="nobody", chunk_size=0)

    assert set(errors_of(raised)) >= {"host", "sender_email", "chunk_size"}
