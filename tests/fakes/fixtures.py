"""pytest fixtures for the mail providers' real counterparts (import from the top conftest)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from common.templating import render
from services.mailer.providers import OutgoingMessage
from tests.fakes.bamboohr_server import BambooHrServer
from tests.fakes.classroom_server import ClassroomServer
from tests.fakes.mailgun_server import MailgunServer
from tests.fakes.moodle_ws_server import MoodleWsServer
from tests.fakes.moto_server import MotoSes
from tests.fakes.sendgrid_server import SendGridServer
from tests.fakes.smtp_sink import SmtpSink

WELCOME_SUBJECT = "{{course}}: welcome, {{first_name}}"
WELCOME_HTML = (
    "<p>Dear {{first_name}},</p><p>{{course}} starts on {{start}}.</p>"
    "{{#manager}}<p>Your manager {{manager}} has been told.</p>{{/manager}}"
)
WELCOME_TEXT = "Dear {{first_name}}, {{course}} starts on {{start}}."


def _learner(index: int, company: str) -> dict[str, Any]:
    # Every third learner has a name that needs HTML escaping and is not ASCII.
    first_name = f"Zoë & <Co> {index}" if index % 3 == 0 else f"Learner {index}"
    manager = f"Manager of {company}" if index % 2 == 0 else None
    return {
        "first_name": first_name,
        "course": f"{company} Safety 101",
        "start": "1 March",
        "manager": manager,
    }


@pytest.fixture
def make_messages() -> Callable[..., list[OutgoingMessage]]:
    """Build rendered messages the way the mailer does: one template, each learner's data."""

    def build(
        count: int,
        *,
        company: str = "Acme",
        first_id: int = 1,
        with_text: bool = True,
        **message_fields: Any,
    ) -> list[OutgoingMessage]:
        messages = []
        for recipient_id in range(first_id, first_id + count):
            variables = _learner(recipient_id, company)
            messages.append(
                OutgoingMessage(
                    recipient_id=recipient_id,
                    to=f"learner{recipient_id}@{company.lower()}.example",
                    subject=render(WELCOME_SUBJECT, variables, escape_html=False),
                    html=render(WELCOME_HTML, variables),
                    text=render(WELCOME_TEXT, variables, escape_html=False) if with_text else None,
                    **message_fields,
                )
            )
        return messages

    return build


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoSes]:
    server = MotoSes()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def moto_ses(moto_server: MotoSes) -> MotoSes:
    """The session's moto server, emptied, faults cleared, sender verified."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def sendgrid_server() -> Iterator[SendGridServer]:
    server = SendGridServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailgun_server() -> Iterator[MailgunServer]:
    server = MailgunServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bamboohr_server() -> Iterator[BambooHrServer]:
    """BambooHR's API for company "acme", key ``bamboohr_server.api_key``, no employees."""
    server = BambooHrServer().start()
    yield server
    server.stop()


@pytest.fixture
def moodle_ws_server() -> Iterator[MoodleWsServer]:
    """Moodle's REST server with one token holding the user functions, guest and admin only."""
    server = MoodleWsServer().start()
    yield server
    server.stop()


@pytest.fixture
def classroom_server() -> Iterator[ClassroomServer]:
    """Google Classroom API v1 (discovery document and rosters), no courses until added."""
    server = ClassroomServer().start()
    yield server
    server.stop()
