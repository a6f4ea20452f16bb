"""Which SMTP hosts a company may send through: public addresses only, unless allowed.

The mailers connect to a company's SMTP host and hand it the relay password, so a host on the
mailers' own networks is refused: loopback, RFC 1918 and unique-local (fc00::/7), link-local
(169.254.0.0/16 holds the cloud metadata service), unspecified, multicast and the other
non-global ranges, as IP literals, as names such as `localhost`, and as names that resolve to
them. The check runs when settings are saved and again at send time, where the name is resolved
once and the connection goes to an address that was checked (a second lookup could answer
differently). A site admin may allow private hosts for one company (an internal relay); the
site setting MAIL_SMTP_ALLOW_PRIVATE_HOSTS allows them everywhere (test and development runs).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

REFUSED = (
    "a private or local address, which the mailers may not connect to "
    "(a site admin can allow it for this company)"
)
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HostNotAllowed(Exception):
    """The host is, or resolves to, an address the mailers may not connect to."""


@dataclass(frozen=True)
class SmtpTarget:
    """An address checked for sending: connect here, and name ``host`` for TLS."""

    family: int
    sockaddr: tuple


def address_refused(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _local_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name in _LOCAL_NAMES or name.endswith(".localhost")


def syntax_problem(host: str) -> str | None:
    if _literal(host) is not None:
        return None
    if any(c in host for c in "/:@ \t\r\n") or not host.strip("."):
        return "a host name or IP address (no scheme, port or path)"
    return None


def host_problem(host: str, *, allow_private: bool) -> str | None:
    """Why ``host`` may not be saved as an SMTP host, or None.

    A name that does not resolve now is accepted: DNS may not know it yet, and every send
    resolves and checks it again.
    """
    problem = syntax_problem(host)
    if problem or allow_private:
        return problem
    literal = _literal(host)
    if literal is not None:
        return REFUSED if address_refused(literal) else None
    if _local_name(host):
        return REFUSED
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    return REFUSED if any(_refused_info(info) for info in infos) else None


async def smtp_targets(host: str, port: int, *, allow_private: bool) -> list[SmtpTarget]:
    """The addresses to connect to for ``host``: every one checked, or HostNotAllowed.

    Raises OSError when the name does not resolve. One refused address refuses the host: a
    name that resolves to a public and a private address must not reach the private one.
    """
    if syntax_problem(host):
        raise HostNotAllowed(f"{host!r} is not a host name")
    if not allow_private and _local_name(host):
        raise HostNotAllowed(f"{host!r} is a local name")
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    if not allow_private:
        refused = sorted({str(info[4][0]) for info in infos if _refused_info(info)})
        if refused:
            raise HostNotAllowed(f"{host!r} resolves to {', '.join(refused)}")
    return [SmtpTarget(family, sockaddr) for family, _, _, _, sockaddr in infos]


async def open_connection(targets: list[SmtpTarget], timeout_s: float) -> socket.socket:
    """A connected socket to the first target that answers; the last OSError otherwise."""
    loop = asyncio.get_running_loop()
    error: OSError = OSError("no address to connect to")
    for target in targets:
        sock = socket.socket(target.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, target.sockaddr), timeout_s)
        except OSError as exc:  # refused, unreachable, or TimeoutError
            sock.close()
            error = exc
            continue
        return sock
    raise error


def _refused_info(info: tuple) -> bool:
    address = str(info[4][0]).split("%")[0]  # drop an IPv6 zone index
    try:
        return address_refused(ipaddress.ip_address(address))
    except ValueError:
        return True
