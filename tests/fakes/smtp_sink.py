"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, per recipient.

It can refuse addresses for good (550), defer them (451 a number of times), or act busy
(421 to MAIL FROM, optionally after some messages), the way relays do; and it can require
STARTTLS or implicit TLS (self-signed certificate) and a login.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import socket
import ssl
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class ReceivedEmail:
    sender: str
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part else None

    @property
    def text(self) -> str | None:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part else None


class _Handler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: dict[str, list[ReceivedEmail]] = defaultdict(list)
        self.sessions = 0
        self.rejected: set[str] = set()
        self.deferrals: dict[str, int] = {}
        self.busy_after: int | None = None
        self.busy_times = 0
        self.accepted_mail_commands = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        with self.lock:
            if not getattr(session, "counted", False):
                session.counted = True
                self.sessions += 1
            if self.busy_times and self.accepted_mail_commands >= (self.busy_after or 0):
                self.busy_times -= 1
                return "421 4.7.0 Too many messages, try again later"
            self.accepted_mail_commands += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        key = address.lower()
        with self.lock:
            if key in self.rejected:
                return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
            if self.deferrals.get(key):
                self.deferrals[key] -= 1
                return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.received[recipient.lower()].append(
                    ReceivedEmail(sender=envelope.mail_from, message=message)
                )
        return "250 2.0.0 OK: queued"


class SmtpSink:
    def __init__(
        self, *, security: str = "none", credentials: tuple[str, str] | None = None
    ) -> None:
        """``security``: "none", "starttls" (required before MAIL) or "tls" (implicit)."""
        self._handler = _Handler()
        self.host = "127.0.0.1"
        self.port = free_port()
        options: dict = {}
        if security == "starttls":
            options.update(tls_context=_self_signed_context(), require_starttls=True)
        elif security == "tls":
            # aiosmtpd only knows about STARTTLS; on an implicit-TLS port AUTH is already safe.
            options.update(ssl_context=_self_signed_context(), auth_require_tls=False)
        if credentials is not None:
            options.update(authenticator=_Authenticator(*credentials), auth_required=True)
        self._controller = Controller(self._handler, hostname=self.host, port=self.port, **options)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reject(self, address: str) -> None:
        """Answer RCPT TO for ``address`` with 550 from now on."""
        with self._handler.lock:
            self._handler.rejected.add(address.lower())

    def defer(self, address: str, times: int = 1) -> None:
        """Answer RCPT TO for ``address`` with 451 the next ``times`` times."""
        with self._handler.lock:
            self._handler.deferrals[address.lower()] = times

    def answer_busy(self, times: int = 1, after_messages: int = 0) -> None:
        """Answer 421 to the next ``times`` MAIL FROM once ``after_messages`` more are in."""
        with self._handler.lock:
            self._handler.busy_times = times
            self._handler.busy_after = self._handler.accepted_mail_commands + after_messages

    def received(self, address: str) -> list[ReceivedEmail]:
        with self._handler.lock:
            return list(self._handler.received.get(address.lower(), []))

    @property
    def recipients(self) -> set[str]:
        with self._handler.lock:
            return set(self._handler.received)

    @property
    def sessions(self) -> int:
        """SMTP sessions that sent at least one MAIL FROM."""
        with self._handler.lock:
            return self._handler.sessions


class _Authenticator:
    def __init__(self, username: str, password: str) -> None:
        self._expected = LoginPassword(username.encode(), password.encode())

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        # handled=False: aiosmtpd then answers a refusal with its standard 535 reply.
        return AuthResult(success=auth_data == self._expected, handled=False)


def _self_signed_context() -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(cert_file, key_file)
    return context
