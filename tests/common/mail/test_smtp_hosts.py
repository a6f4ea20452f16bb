"""SMTP hosts on the mailers' own networks are refused when saved and when sending."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

from common.mail import failures
from common.mail.smtp_hosts import REFUSED, host_problem
from services.mailer.providers import OutgoingMessage, PermanentSendError
from services.mailer.providers.smtp import SmtpProvider
from tests.fakes.tcp_listener import TcpListener


def _loopback_name() -> str:
    """This machine's name: /etc/hosts maps it to a loopback or private address here."""
    name = socket.gethostname()
    address = socket.getaddrinfo(name, None)[0][4][0]
    if not (address.startswith(("127.", "10.", "192.168.", "172.")) or address == "::1"):
        pytest.skip(f"{name} resolves to {address}, not a local address")
    return name


REFUSED_HOSTS = [
    "127.0.0.1", "127.0.0.2", "10.1.2.3", "172.16.5.4", "192.168.1.10", "169.254.169.254",
    "::1", "[::1]", "fd00::1", "0.0.0.0", "224.0.0.1", "localhost", "LocalHost.",
    "mail.localhost", "2130706433",  # 127.0.0.1 written as one number
]  # fmt: skip


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_private_and_local_hosts_are_refused_when_saved(host):
    assert host_problem(host, allow_private=False) == REFUSED


def test_a_name_that_resolves_to_a_local_address_is_refused():
    assert host_problem(_loopback_name(), allow_private=False) == REFUSED


@pytest.mark.parametrize("host", ["8.8.8.8", "2a00:1450:4001::1b", "smtp.acme.example"])
def test_public_addresses_and_names_not_resolvable_yet_pass(host):
    # A name DNS does not know yet passes here; every send resolves and checks it again.
    assert host_problem(host, allow_private=False) is None


@pytest.mark.parametrize("host", ["smtp://mail.example", "mail.example:25", "a b", "u@mail"])
def test_a_host_is_a_name_or_address_only(host):
    assert "no scheme, port or path" in host_problem(host, allow_private=True)


def test_allowed_private_hosts_pass():
    assert host_problem("127.0.0.1", allow_private=True) is None
    assert host_problem("localhost", allow_private=True) is None


def _send_to(host: str, port: int, *, allow: bool = False) -> list:
    # Built directly (no settings check), as settings stored before this check would be.
    config = {"host": host, "port": port, "security": "none", "from_email": "a@b.example",
              "timeout_s": 2.0}  # fmt: skip
    provider = SmtpProvider(config)
    if allow:
        provider.site = provider.site.for_company(True)
    message = OutgoingMessage(1, "learner@acme.example", "Hi", "<p>Hi</p>")
    return asyncio.run(provider.send_batch([message]))


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "2130706433", "0.0.0.0"]
)
def test_refused_hosts_are_never_connected_to_at_send_time(host):
    with TcpListener(banner=b"220 internal ESMTP\r\n") as listener:
        with pytest.raises(PermanentSendError, match=re.escape(failures.HOST_NOT_ALLOWED)):
            _send_to(host, listener.port)

        assert listener.connections == 0


@pytest.mark.parametrize("host", ["10.1.2.3", "172.16.5.4", "192.168.1.10", "169.254.169.254",
                                  "fd00::1"])  # fmt: skip
def test_private_network_hosts_are_refused_at_send_time_without_trying(host):
    with pytest.raises(PermanentSendError, match=re.escape(failures.HOST_NOT_ALLOWED)):
        _send_to(host, 25)


def test_a_name_resolving_to_a_local_address_is_refused_at_send_time():
    with TcpListener() as listener:
        with pytest.raises(PermanentSendError, match=re.escape(failures.HOST_NOT_ALLOWED)):
            _send_to(_loopback_name(), listener.port)

        assert listener.connections == 0


def test_an_internal_service_banner_never_reaches_the_error():
    banner = b'INFO {"server_id":"NSECRET","auth_required":true,"xkey":"XKEYSECRET"}\r\n'
    with TcpListener(banner=banner) as listener:
        with pytest.raises(PermanentSendError) as raised:
            _send_to("127.0.0.1", listener.port, allow=True)

        assert listener.connections == 1
    assert raised.value.reason == failures.SESSION_FAILED
    assert "SECRET" not in str(raised.value) and "SECRET" in raised.value.detail
