"""HTTP providers: requests go only to the provider's host, and its replies reach only the log."""

from __future__ import annotations

import json

import pytest
from werkzeug.wrappers import Request, Response

from common.mail import failures
from common.mail.site import MailSite
from services.mailer.providers import PermanentSendError, get_provider
from tests.fakes.local_http import LocalWsgiServer
from tests.services.mailer.conftest import send

SECRET_LOOKING = 'INFO {"server_id":"NSECRETSERVERID","xkey":"XKEYSECRET"}'


class Recorder:
    """An HTTP server that answers every request the same way and counts them."""

    def __init__(self, respond) -> None:  # type: ignore[no-untyped-def]
        self.requests: list[str] = []
        self._respond = respond
        self._http = LocalWsgiServer(self._wsgi)

    def _wsgi(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        self.requests.append(f"{request.method} {request.path}")
        return self._respond(request)(environ, start_response)

    def __enter__(self) -> Recorder:
        self._http.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.stop()

    @property
    def base_url(self) -> str:
        return self._http.base_url


def provider_for(kind: str, base_url: str):  # type: ignore[no-untyped-def]
    if kind == "sendgrid":
        config = {"api_key": "SG.company-key", "from_email": "noreply@acme.example"}
        return get_provider(kind, config, MailSite(sendgrid_base_url=base_url))
    config = {"api_key": "key-company", "domain": "mg.acme.example", "from_email": "a@acme.example"}
    return get_provider(kind, config, MailSite(mailgun_base_url=base_url))


@pytest.mark.parametrize("kind", ["sendgrid", "mailgun"])
@pytest.mark.parametrize("status", [302, 307])
def test_a_redirect_to_another_host_is_not_followed(kind, status, make_messages):
    with Recorder(lambda request: Response("", status=200)) as elsewhere:
        moved = Response("", status=status, headers={"Location": f"{elsewhere.base_url}/x"})
        with Recorder(lambda request: moved) as provider_host:
            with pytest.raises(PermanentSendError) as raised:
                send(provider_for(kind, provider_host.base_url), make_messages(2))

        assert len(provider_host.requests) == 1
        assert elsewhere.requests == []  # the key never went there
    assert raised.value.reason == failures.REDIRECTED


@pytest.mark.parametrize("kind", ["sendgrid", "mailgun"])
@pytest.mark.parametrize("status", [400, 401, 404, 500, 503])
def test_the_reply_body_is_kept_for_the_log_and_never_shown(kind, status, make_messages):
    body = json.dumps({"errors": [{"message": SECRET_LOOKING}], "message": SECRET_LOOKING})

    with Recorder(lambda request: Response(body, status=status)) as host:
        provider = provider_for(kind, host.base_url)
        try:
            outcomes = send(provider, make_messages(2))
        except Exception as exc:  # noqa: BLE001 - whichever way it failed, check the words
            shown, detail = str(exc), getattr(exc, "detail", "")
        else:
            shown = " ".join(o.error or "" for o in outcomes)
            detail = " ".join(o.detail or "" for o in outcomes)

    assert shown in failures.FIXED, shown
    assert "SECRET" not in shown and "SECRET" in detail


def test_without_a_site_override_the_providers_fixed_hosts_are_used():
    sendgrid = get_provider("sendgrid", {"api_key": "SG.x", "from_email": "a@acme.example"})
    mailgun = {"api_key": "k", "domain": "mg.acme.example", "from_email": "a@acme.example"}
    mailgun_eu = get_provider("mailgun", {**mailgun, "region": "eu"})

    assert sendgrid._api._base_url == "https://api.sendgrid.com"
    assert mailgun_eu._api._base_url == "https://api.eu.mailgun.net"
