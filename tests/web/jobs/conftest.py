"""Module-scoped fixtures for the compose page's tests (test_compose_*.py): one web app over
one two-company site per test module. The site gets the rows recipient sources must tell
apart (a cohort across companies, a suspended learner, a member suspended in the company, a
learner without a usable address)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from common.migrate import upgrade
from common.models.mail import CloudJob, CloudRecipient
from tests.conftest import BOTH_DATABASES, _empty_database
from tests.factories.sites import DAY, NOW, Site, build_site
from tests.support import make_settings
from tests.web.conftest import csrf_token, sign_in
from web.app import create_app


@dataclass
class ComposeSite:
    site: Site
    cohort: int  # Night shift: ana, ben and 'sus' of Acme; yuri of Bolt
    bolt_cohort: int  # Bolt only: yuri, zoe


def add_cohort(site: Site, name: str, members: list[str]) -> int:
    cohort = site.moodle.insert("cohort", contextid=1, name=name, descriptionformat=1,
                                component="", timecreated=NOW, timemodified=NOW)  # fmt: skip
    for member in members:
        site.moodle.insert("cohort_members", cohortid=cohort, userid=site.users[member])
    return cohort


def extend_site(site: Site) -> ComposeSite:
    m, acme = site.moodle, site.companies["A"]
    fire = site.courses["Fire Safety"]
    # Suspended in Moodle: enrolled and in a department, never a recipient.
    site.users["sus"] = m.user(username="sus", firstname="Sue", lastname="Spended", suspended=1)
    m.company_user(acme, site.users["sus"], departmentid=site.departments["Acme Ops"])
    m.enrol(site.users["sus"], fire, timestart=NOW - 300 * DAY)
    # Suspended in the company only: out of the company and department lists.
    site.users["left"] = m.user(username="left", firstname="Lee", lastname="Left")
    m.company_user(acme, site.users["left"], suspended=1, departmentid=site.departments["Acme Ops"])
    # An address no provider would take: left out (skipped) rather than failing the job.
    site.users["noaddr"] = m.user(username="noaddr", firstname="No", lastname="Addr",
                                  email="not-an-address")  # fmt: skip
    m.company_user(acme, site.users["noaddr"], departmentid=site.departments["Acme Sales North"])
    return ComposeSite(
        site=site,
        cohort=add_cohort(site, "Night shift", ["ana", "ben", "sus", "yuri"]),
        bolt_cohort=add_cohort(site, "Bolt drivers", ["yuri", "zoe"]),
    )


@pytest.fixture(scope="module", params=BOTH_DATABASES)
def composed_site(request, tmp_path_factory) -> Iterator[ComposeSite]:  # type: ignore[no-untyped-def]
    databases = _empty_database(request.param, tmp_path_factory.mktemp("compose"), "moodle")
    url = next(databases)
    yield extend_site(build_site(url))
    databases.close()


@pytest.fixture(scope="module")
def compose_bus(nats_server):  # type: ignore[no-untyped-def]
    """The bus the compose app publishes to (a module may give it one of its own)."""
    return nats_server


@pytest.fixture(scope="module")
def compose_app(composed_site, tmp_path_factory, compose_bus) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("compose-app")
    settings = make_settings(tmp, MOODLE_DATABASE_URL=composed_site.site.url,
                             NATS_URL=compose_bus.url)  # fmt: skip
    upgrade(settings.database_url)
    application = create_app(settings)
    application.extensions["manireports"].clock = lambda: NOW
    yield application
    application.extensions["manireports"].close()


@pytest.fixture(scope="module")
def signed_in_as(compose_app):  # type: ignore[no-untyped-def]
    clients: dict[str, FlaskClient] = {}

    def client(username: str) -> FlaskClient:
        if username not in clients:
            made = compose_app.test_client()
            assert sign_in(made, username).status_code == 302, username
            clients[username] = made
        return clients[username]

    return client


def token(client: FlaskClient, company: int) -> str:
    return csrf_token(client, f"/jobs/new?company={company}")


def job_counts(app: Flask) -> tuple[int, int]:
    with app.extensions["manireports"].appdb.transaction() as session:
        return (session.scalar(select(func.count()).select_from(CloudJob)) or 0,
                session.scalar(select(func.count()).select_from(CloudRecipient)) or 0)  # fmt: skip
