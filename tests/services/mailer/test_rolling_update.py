"""SIGTERM during a rolling update of mailers: real processes, the SMTP sink, a nats-server.

What Kubernetes does to a Deployment with maxUnavailable 0: a new mailer starts beside the old
one, then the old one gets SIGTERM and, after terminationGracePeriodSeconds, SIGKILL. The old
mailer must stop taking chunks, finish the ones it holds (every recipient of them sent and
recorded, the message acked) and exit 0 well within that period; the new one sends the rest.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time

from common.bus import Bus
from common.service import Worker
from tests.services.mailer.conftest import (
    COMPANY_A,
    configure,
    dispatch,
    mailer_env,
    make_job,
    recipients,
    smtp_config,
    wait_final,
)
from tests.services.mailer.test_mail_e2e import SessionGate, sent_count
from tests.support import wait_for

RECIPIENTS, CHUNK = 1000, 100


def mail_consumer(url: str):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        bus = await Bus.connect(url, name="test")
        try:
            return await bus.js.consumer_info("MAIL", "mailer")
        finally:
            await bus.close()

    return asyncio.run(go())


def health_replies(url: str) -> list[dict]:
    async def go():  # type: ignore[no-untyped-def]
        bus = await Bus.connect(url, name="test")
        try:
            return await bus.gather("mr.health.mailer", {}, wait_s=0.5)
        finally:
            await bus.close()

    return asyncio.run(go())


def chunks_being_sent(appdb, job_id: int) -> set[int]:  # type: ignore[no-untyped-def]
    return {r.chunk for r in recipients(appdb, job_id) if r.status == "sending"}


def start_held_mailer(tmp_path, fresh_nats, appdb, smtp_sink, spawn_service, **env_extra):  # type: ignore[no-untyped-def]
    """A job under way on one old mailer (2 chunk loops), both loops held mid-chunk at the
    SMTP gate with everything sent before recorded; then the new mailer started beside it."""
    configure(appdb, COMPANY_A, "smtp", smtp_config(smtp_sink), chunk_size=CHUNK)
    job_id = make_job(appdb, RECIPIENTS, chunk_size=CHUNK)
    env = mailer_env(tmp_path, fresh_nats.url, appdb, MAILER_CONCURRENCY="2", **env_extra)
    old = spawn_service("mailer", env)
    gate = SessionGate(smtp_sink)
    dispatch(fresh_nats.url, job_id)
    wait_for(lambda: len(smtp_sink.recipients) >= 150, timeout_s=60, message="sending under way")
    gate.open.clear()
    wait_for(
        lambda: gate.waiting >= 2 and sent_count(appdb, job_id) == len(smtp_sink.recipients),
        timeout_s=90,
        message="both of the old mailer's chunk loops held between provider requests",
    )
    held = chunks_being_sent(appdb, job_id)
    assert len(held) == 2, held
    new = spawn_service("mailer", env)
    wait_for(lambda: len(health_replies(fresh_nats.url)) == 2, message="the new mailer is up")
    return job_id, old, new, gate, held


def test_sigterm_mid_chunk_finishes_it_exits_0_and_no_recipient_or_chunk_is_sent_twice(
    tmp_path, fresh_nats, appdb, smtp_sink, spawn_service
):
    job_id, old, _new, gate, held = start_held_mailer(
        tmp_path, fresh_nats, appdb, smtp_sink, spawn_service
    )
    old.process.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    assert old.process.poll() is None, "the old mailer left before finishing its chunks"
    gate.open.set()
    started = time.monotonic()
    assert old.process.wait(timeout=Worker.shutdown_grace_s) == 0
    assert time.monotonic() - started < Worker.shutdown_grace_s

    # The chunks it held are finished: every recipient of them sent, by this mailer.
    by_chunk = [r for r in recipients(appdb, job_id) if r.chunk in held]
    assert len(by_chunk) == 2 * CHUNK
    assert {r.status for r in by_chunk} == {"sent"}
    log = old.output()
    assert re.search(r"mailer stopping: finishing 2 in-flight message\(s\)", log), log
    assert "mailer stopped" in log

    # The new mailer sends the rest; nothing twice.
    job = wait_final(appdb, job_id, timeout_s=120)
    assert job.status == "completed"
    assert (job.emails_sent, job.emails_failed) == (RECIPIENTS, 0)
    counts = [len(smtp_sink.received(f"learner{i}@learners.example")) for i in range(RECIPIENTS)]
    assert counts == [1] * RECIPIENTS
    assert {r.attempts for r in recipients(appdb, job_id)} == {1}, "a recipient was claimed twice"
    # Ten chunks, ten deliveries: none was handed to a mailer a second time.
    info = mail_consumer(fresh_nats.url)
    assert info.delivered.consumer_seq == RECIPIENTS // CHUNK
    assert info.num_pending == 0 and info.num_ack_pending == 0


def test_a_chunk_held_past_the_shutdown_grace_is_given_up_and_still_nobody_gets_two_emails(
    tmp_path, fresh_nats, appdb, smtp_sink, spawn_service
):
    """The bound: an SMTP server that stalls cannot keep a stopping mailer past its grace.
    What it held goes back (its claims lapse after the ack wait) and the new mailer sends it."""
    job_id, old, _new, gate, held = start_held_mailer(
        tmp_path, fresh_nats, appdb, smtp_sink, spawn_service, BUS_ACK_WAIT_S="5"
    )
    old.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert old.process.wait(timeout=Worker.shutdown_grace_s + 15) == 0
    waited = time.monotonic() - started
    assert Worker.shutdown_grace_s - 1 <= waited < Worker.shutdown_grace_s + 15
    gate.open.set()

    job = wait_final(appdb, job_id, timeout_s=120)
    assert job.status == "completed"
    counts = [len(smtp_sink.received(f"learner{i}@learners.example")) for i in range(RECIPIENTS)]
    assert counts == [1] * RECIPIENTS
    # Only the recipients held at the gate were claimed again, by the new mailer.
    again = {r.chunk for r in recipients(appdb, job_id) if r.attempts > 1}
    assert again and again <= held
