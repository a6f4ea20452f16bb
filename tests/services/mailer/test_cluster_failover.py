"""Killing one NATS server of three during a mail job (issue 15): with NATS_REPLICAS=3 the job
finishes and every recipient gets the email exactly once."""

from __future__ import annotations

import asyncio

from common.bus import Bus
from common.nats_server import EmbeddedNatsCluster
from tests.cluster_support import cluster, kill_leader
from tests.services.mailer.conftest import (
    COMPANY_A,
    configure,
    job_row,
    mailer_env,
    make_job,
    smtp_config,
    wait_final,
)
from tests.support import wait_for

__all__ = ["cluster"]  # a fixture

TOTAL = 400


def test_a_mail_job_survives_losing_the_mail_streams_leader(
    tmp_path, cluster: EmbeddedNatsCluster, appdb, smtp_sink, spawn_service
):  # type: ignore[no-untyped-def]
    # At 80 a second (the shared rate limit, a KV bucket of three replicas too) the job
    # takes five seconds: the kill lands mid-job however busy the machine is.
    configure(appdb, COMPANY_A, "smtp", smtp_config(smtp_sink), chunk_size=20, rate_per_s=80)
    job_id = make_job(appdb, TOTAL, chunk_size=20)
    env = mailer_env(tmp_path, cluster.url, appdb, NATS_REPLICAS="3")
    spawn_service("mailer", env)
    spawn_service("mailer", env)

    async def dispatch_then_kill() -> str:
        bus = await Bus.connect(cluster.url, "test", replicas=3)
        try:
            await bus.ensure_streams()
            await bus.publish("mr.cmd.mailer.dispatch_job", {"job": job_id},
                              msg_id=f"dispatch:{job_id}")  # fmt: skip
            # Mid-job: some sent, most still queued as chunks on the MAIL stream.
            while job_row(appdb, job_id).emails_sent < TOTAL // 8:
                await asyncio.sleep(0.05)
            return await kill_leader(bus, cluster, "MAIL")
        finally:
            await bus.close()

    killed = asyncio.run(dispatch_then_kill())
    assert job_row(appdb, job_id).emails_sent < TOTAL, "the job finished before the kill"
    job = wait_final(appdb, job_id, timeout_s=180)
    assert killed.startswith("manireports-n")
    assert sum(1 for s in cluster.servers if s.alive()) == 2
    assert job.status == "completed"
    assert (job.emails_sent, job.emails_failed) == (TOTAL, 0)
    wait_for(lambda: len(smtp_sink.recipients) >= TOTAL, message="every message at the sink")
    counts = [len(smtp_sink.received(f"learner{i}@learners.example")) for i in range(TOTAL)]
    assert counts.count(0) == 0, "lost"
    assert set(counts) == {1}, f"{sum(c - 1 for c in counts)} duplicates"
