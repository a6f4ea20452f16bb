"""queue_job: a job is written first, then its one dispatch command goes on the bus."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import func, select

from common.bus import MSG_ID_HEADER, Bus
from common.errors import FieldError
from common.mail.queue import (
    DISPATCH_SUBJECT,
    dispatch,
    dispatch_command,
    queue_job,
    queue_job_async,
)
from common.mail.recipients import RecipientSpec
from common.models.mail import JOB_PENDING, CloudJob
from web.bus_client import BusClient

ACME = 11


def job_fields(**overrides):  # type: ignore[no-untyped-def]
    recipients = [RecipientSpec("ana@acme.example", {"firstname": "Ana"}),
                  RecipientSpec("bo@acme.example", {"firstname": "Bo"})]  # fmt: skip
    templates = {"subject": "Hi {{firstname}}", "html": "<p>Hi {{firstname}}</p>"}
    return {"company_id": ACME, "job_type": "bulk", "source": "api", "recipients": recipients,
            **templates, **overrides}  # fmt: skip


def on_the_bus(url: str) -> list[tuple[str, dict]]:
    """(message id, payload) of every dispatch command on the COMMANDS stream."""

    async def read() -> list[tuple[str, dict]]:
        bus = await Bus.connect(url, name="test")
        await bus.ensure_streams()
        state = (await bus.js.stream_info("COMMANDS")).state
        found = []
        for seq in range(state.first_seq, state.last_seq + 1):
            if state.messages == 0:
                break
            msg = await bus.js.get_msg("COMMANDS", seq)
            if msg.subject == DISPATCH_SUBJECT:
                found.append((msg.headers[MSG_ID_HEADER], json.loads(msg.data)))
        await bus.close()
        return found

    return asyncio.run(read())


def jobs(appdb) -> list[CloudJob]:  # type: ignore[no-untyped-def]
    with appdb.transaction() as session:
        return list(session.scalars(select(CloudJob).order_by(CloudJob.id)))


def test_the_one_message_id_rule():
    assert dispatch_command(7).msg_id == "dispatch:7"
    assert dispatch_command(7).payload == {"job": 7}
    retry = dispatch_command(7, retry="abc")
    assert (retry.msg_id, retry.payload) == ("dispatch:7:retry:abc", {"job": 7, "retry": "abc"})
    assert retry.subject == DISPATCH_SUBJECT == "mr.cmd.mailer.dispatch_job"


def test_a_queued_job_is_written_then_dispatched_once(appdb, fresh_nats):
    client = BusClient(fresh_nats.url)
    try:
        queued = queue_job(appdb, client.publish, **job_fields())
        # Whoever asks again (the API after a timeout, the UI) asks with the same id.
        assert dispatch(client.publish, queued.job_id)
    finally:
        client.close()

    assert queued.dispatched
    [job] = jobs(appdb)
    assert (job.id, job.status, job.recipients_total) == (queued.job_id, JOB_PENDING, 2)
    assert on_the_bus(fresh_nats.url) == [(f"dispatch:{job.id}", {"job": job.id})]


def test_the_async_twin_follows_the_same_rule(appdb, fresh_nats):
    async def go():  # type: ignore[no-untyped-def]
        bus = await Bus.connect(fresh_nats.url, name="test")
        await bus.ensure_streams()
        try:
            return await queue_job_async(appdb, bus.publish, **job_fields(source="risk"))
        finally:
            await bus.close()

    queued = asyncio.run(go())

    assert queued.dispatched
    assert on_the_bus(fresh_nats.url) == [(f"dispatch:{queued.job_id}", {"job": queued.job_id})]


def test_without_the_bus_the_job_waits_for_the_watcher(appdb):
    client = BusClient(None)  # no NATS_URL: every publish fails
    try:
        queued = queue_job(appdb, client.publish, **job_fields())
    finally:
        client.close()

    assert not queued.dispatched
    assert [(j.id, j.status) for j in jobs(appdb)] == [(queued.job_id, JOB_PENDING)]


def test_a_job_that_is_not_valid_writes_and_publishes_nothing(appdb, fresh_nats):
    client = BusClient(fresh_nats.url)
    try:
        with pytest.raises(FieldError) as raised:
            queue_job(appdb, client.publish, **job_fields(job_type="nope", html="{{#x}}"))
    finally:
        client.close()

    assert {e.field for e in raised.value.errors} == {"type", "html"}
    with appdb.transaction() as session:
        assert session.scalar(select(func.count()).select_from(CloudJob)) == 0
    assert on_the_bus(fresh_nats.url) == []
