"""Mailer tests: an app DB, a nats-server of each test's own, companies, jobs, mailer processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from common.appdb import AppDB
from common.bus import Bus, command_subject
from common.mail.config_save import save_config
from common.mail.jobs import RecipientSpec, create_job
from common.mail.site import MailSite
from common.models.mail import CloudJob, CloudRecipient
from common.nats_server import EmbeddedNatsServer
from tests.support import TEST_SECRET, service_env, wait_for

COMPANY_A, COMPANY_B = 11, 22


@pytest.fixture
def fresh_nats(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture
def appdb(app_db_url: str) -> Iterator[AppDB]:
    """The app DB on SQLite and (when MANIREPORTS_TEST_MARIADB_URL is set) on MariaDB: the
    claim queries must hold on both."""
    db = AppDB(app_db_url)
    yield db
    db.dispose()


def configure(
    appdb: AppDB, company_id: int, provider: str, provider_config: dict,
    site: MailSite | None = None, **values: Any,
):  # fmt: skip
    """Settings saved by a site admin, who lets the company's SMTP host be the loopback sink."""
    base = {
        "provider": provider,
        "enabled": True,
        "sender_email": "noreply@school.example",
        "chunk_size": 100,
        "rate_per_s": 0,
        "offloaded_events": [],
        "provider_config": provider_config,
        "allow_private_smtp_host": True,
    }
    base.update(values)
    with appdb.transaction() as session:
        return save_config(session, company_id, base, secret_key=TEST_SECRET, actor_id=2,
                           actor_is_site_admin=True, site=site)  # fmt: skip


def smtp_config(sink) -> dict:  # type: ignore[no-untyped-def]
    return {"host": sink.host, "port": sink.port, "security": "none"}


def make_job(
    appdb: AppDB, count: int, company_id: int = COMPANY_A, *, domain: str = "learners.example",
    chunk_size: int = 100, job_type: str = "bulk", **fields: Any,
) -> int:  # fmt: skip
    recipients = (
        RecipientSpec(
            email=f"learner{i}@{domain}", data={"firstname": f"L{i}", "password": f"pw{i}"}
        )
        for i in range(count)
    )
    with appdb.transaction() as session:
        job = create_job(
            session, company_id=company_id, job_type=job_type, recipients=recipients,
            source="api", chunk_size=chunk_size,
            subject=fields.pop("subject", "Welcome {{firstname}}"),
            html=fields.pop("html", "<p>Hello {{firstname}}, your password is {{password}}</p>"),
            **fields,
        )  # fmt: skip
        return job.id


def run_bus(url: str, coro_factory):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        bus = await Bus.connect(url, name="test")
        await bus.ensure_streams()
        try:
            return await coro_factory(bus)
        finally:
            await bus.close()

    return asyncio.run(go())


def command(url: str, name: str, payload: dict, msg_id: str) -> None:
    run_bus(url, lambda bus: bus.publish(command_subject("mailer", name), payload, msg_id=msg_id))


def dispatch(url: str, job_id: int) -> None:
    command(url, "dispatch_job", {"job": job_id}, msg_id=f"dispatch:{job_id}")


def job_row(appdb: AppDB, job_id: int) -> CloudJob:
    with appdb.transaction() as session:
        job = session.get(CloudJob, job_id)
        assert job is not None
        return job


def wait_final(appdb: AppDB, job_id: int, timeout_s: float = 120) -> CloudJob:
    final = ("completed", "partially_failed", "failed", "cancelled")
    wait_for(lambda: job_row(appdb, job_id).status in final, timeout_s=timeout_s,
             interval_s=0.25, message=f"job {job_id} to finish")  # fmt: skip
    return job_row(appdb, job_id)


def recipient_statuses(appdb: AppDB, job_id: int) -> dict[str, int]:
    with appdb.transaction() as session:
        rows = session.execute(
            select(CloudRecipient.status, func.count())
            .where(CloudRecipient.jobid == job_id)
            .group_by(CloudRecipient.status)
        )
        return {status: count for status, count in rows}


def recipients(appdb: AppDB, job_id: int) -> list[CloudRecipient]:
    with appdb.transaction() as session:
        return list(session.scalars(select(CloudRecipient).where(CloudRecipient.jobid == job_id)))


def mailer_env(tmp_path: Path, nats_url: str, appdb: AppDB, **extra: str) -> dict[str, str]:
    """A mailer process's environment, on the test's app DB."""
    return service_env(tmp_path, nats_url, DATABASE_URL=appdb.url, **extra)


def data_of(recipient: CloudRecipient) -> dict:
    return json.loads(recipient.recipient_data)


def send(provider, messages):  # type: ignore[no-untyped-def]
    """One provider batch, run to completion from synchronous test code."""
    return asyncio.run(provider.send_batch(messages))
