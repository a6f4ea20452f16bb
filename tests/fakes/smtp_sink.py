"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, per recipient.

It can refuse addresses for good (550), defer them (451 a number of times), or act busy
(421 to MAIL FROM, optionally after some messages), the way relays do.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections import defaultdict
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller


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
    def __init__(self) -> None:
        self._handler = _Handler()
        self.host = "127.0.0.1"
        self.port = free_port()
        self._controller = Controller(self._handler, hostname=self.host, port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

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
