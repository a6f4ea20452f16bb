"""Operational figures (issue 15): a worker's /metrics after a known workload (mail sent to the
SMTP sink, a failed message, queue depths), and `manireports status` per service and stream."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

from common.bus import Bus, ConsumerSpec, command_subject
from common.nats_server import free_port
from tests.metrics_text import samples, value
from tests.services.mailer.conftest import (
    COMPANY_A,
    configure,
    dispatch,
    mailer_env,
    make_job,
    smtp_config,
    wait_final,
)
from tests.support import REPO, wait_for

TOKEN = "worker-scrape-token-0123"


def scrape(port: int, token: str | None = TOKEN) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def on_bus(url: str, work):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        bus = await Bus.connect(url, "test")
        try:
            await bus.ensure_streams()
            return await work(bus)
        finally:
            await bus.close()

    return asyncio.run(go())


def test_a_mailer_exports_sends_failures_and_queue_depth(
    tmp_path, fresh_nats, appdb, smtp_sink, spawn_service
):  # type: ignore[no-untyped-def]
    port = free_port()
    configure(appdb, COMPANY_A, "smtp", smtp_config(smtp_sink), chunk_size=10)
    job_id = make_job(appdb, 30, chunk_size=10)
    env = mailer_env(tmp_path, fresh_nats.url, appdb, METRICS_PORT=str(port), METRICS_TOKEN=TOKEN)
    mailer = spawn_service("mailer", env)
    wait_for(lambda: scrape(port)[0] == 200, timeout_s=60, message="mailer /metrics")
    assert scrape(port, token=None)[0] == 401
    assert scrape(port, token="wrong-token-0123456789")[0] == 401

    dispatch(fresh_nats.url, job_id)
    assert wait_final(appdb, job_id).status == "completed"
    assert len(smtp_sink.recipients) == 30

    async def more_work(bus: Bus) -> int:
        # One the mailer cannot read (a failure), and four no service takes (queue depth).
        await bus.js.publish(command_subject("mailer", "dispatch_job"), b"{not json",
                             headers={"Nats-Msg-Id": "unreadable"})  # fmt: skip
        for n in range(4):
            await bus.publish(command_subject("nobody", "x"), {"n": n})
        return 0

    on_bus(fresh_nats.url, more_work)

    def failed_once():  # type: ignore[no-untyped-def]
        found = samples(scrape(port)[1])
        failed = value(found, "manireports_failures_total", service="mailer", kind="message")
        return found if failed == 1 else None

    found = wait_for(failed_once, timeout_s=20, message="the unreadable message counted")
    sent = value(found, "manireports_mail_messages_total", provider="smtp", outcome="sent")
    assert sent == 30
    assert value(found, "manireports_mail_messages_total", provider="smtp", outcome="failed") == 0
    # The dispatch command, three chunks, the unreadable one not: acked messages.
    assert value(found, "manireports_messages_processed_total", service="mailer") >= 4
    stored = on_bus(fresh_nats.url, lambda bus: bus.js.stream_info("COMMANDS"))
    assert stored.state.messages == 4
    assert value(found, "manireports_queue_depth", stream="COMMANDS") == 4
    assert value(found, "manireports_queue_depth", stream="MAIL") == 0
    mailer.terminate()


def status(env: dict[str, str], *args: str) -> tuple[int, str]:
    argv = [sys.executable, "-m", "cli.main", "status", "--wait", "0.7", *args]
    result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout


def test_status_shows_replicas_heartbeats_and_each_streams_backlog(
    tmp_path, fresh_nats, appdb, spawn_service
):  # type: ignore[no-untyped-def]
    env = mailer_env(tmp_path, fresh_nats.url, appdb)
    mailers = [spawn_service("mailer", env), spawn_service("mailer", env)]
    probe = ConsumerSpec("COMMANDS", "status-probe", command_subject("nobody", ">"), ack_wait_s=1)

    def two_mailers():  # type: ignore[no-untyped-def]
        code, out = status(env, "--json")
        shown = json.loads(out) if out else None
        return shown if shown and shown["services"]["mailer"]["healthy"] == 2 else None

    wait_for(two_mailers, timeout_s=60, message="two mailers answering")

    async def backlog(bus: Bus) -> None:
        for n in range(3):
            await bus.publish(command_subject("nobody", "x"), {"n": n})
        sub = await bus.pull(probe)
        await sub.fetch(1, timeout=2)  # not acked: after ack_wait it is delivered again
        await asyncio.sleep(1.5)
        await sub.fetch(1, timeout=2)

    on_bus(fresh_nats.url, backlog)
    code, out = status(env, "--json")
    shown = json.loads(out)
    assert code == 1  # aggregator, scheduler and sync are not running
    mailer = shown["services"]["mailer"]
    assert (mailer["replicas"], mailer["healthy"]) == (2, 2)
    assert time.time() - mailer["last_heartbeat"] < 30
    assert shown["services"]["sync"] == {"replicas": 0, "healthy": 0, "last_heartbeat": None,
                                         "replies": [], "silent": []}  # fmt: skip
    streams = {s["name"]: s for s in shown["streams"]}
    assert not any(name.startswith("KV_") for name in streams)
    commands = streams["COMMANDS"]
    assert commands["messages"] == 3
    consumers = {c["name"]: c for c in commands["consumers"]}
    assert consumers["status-probe"] == {"name": "status-probe", "pending": 2,
                                         "ack_pending": 1, "redelivered": 1}  # fmt: skip
    assert "mailer" in consumers or any(name.startswith("mailer") for name in consumers)

    # A replica stopped: one answers, the other is listed with its last heartbeat.
    assert mailers[0].terminate() == 0
    code, text = status(env)
    assert code == 1
    lines = text.splitlines()
    mailer_line = next(line for line in lines if line.startswith("mailer "))
    assert "1/1 healthy" in mailer_line and "s ago" in mailer_line
    assert any("not answering, last heartbeat" in line for line in lines)
    assert next(line for line in lines if line.startswith("sync ")).split()[1] == "DOWN"
    row = next(line for line in lines if line.startswith("COMMANDS "))
    # messages, pending (2 for the probe, none for the rest), unacked, redelivered, consumers.
    assert row.split()[1:4] == ["3", "2", "1"] and row.split()[4] == "1"
