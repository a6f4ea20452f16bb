"""The web app on the two-company site (`site` fixture), and signed-in clients."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from common.migrate import upgrade
from tests.factories.moodle import DEFAULT_PASSWORD
from tests.factories.sites import NOW, Site
from tests.support import make_settings
from web.app import create_app


@pytest.fixture
def app(site: Site, tmp_path: Path, nats_server) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, MOODLE_DATABASE_URL=site.url, NATS_URL=nats_server.url)
    upgrade(settings.database_url)
    application = create_app(settings)
    application.extensions["manireports"].clock = lambda: NOW
    yield application
    application.extensions["manireports"].close()


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client: FlaskClient, username: str, password: str = DEFAULT_PASSWORD):  # type: ignore[no-untyped-def]
    token = csrf_token(client)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token})  # fmt: skip


@pytest.fixture
def client_as(app: Flask):  # type: ignore[no-untyped-def]
    def make(username: str) -> FlaskClient:
        client = app.test_client()
        response = sign_in(client, username)
        assert response.status_code == 302, f"{username} could not sign in"
        return client

    return make
