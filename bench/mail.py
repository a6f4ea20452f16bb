"""Benchmark: a mail job through NATS and mailer processes against a bare aiosmtplib loop.

Both send the same messages (the job's Mustache templates rendered per recipient, the same
MIME) to the same SMTP sink, a counting aiosmtpd server in a process of its own. The
project's figure is from dispatch to the job's final status, with every recipient's row
written; the baseline is one connection sending message after message. Then the scaling
runs: 1, 2 and 4 mailer processes without a quota, and 2 and 4 with a quota Q, where the
largest count the sink received in any 10-second window is compared with 10·Q.

    python bench/mail.py --quick        # 5,000 recipients, about a minute
    python bench/mail.py                # 50,000 recipients

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib
from smtp_sink import Sink
from sqlalchemy import select

from common.appdb import AppDB
from common.bus import Bus
from common.mail.config_save import save_config
from common.mail.jobs import create_job
from common.mail.queue import dispatch_async
from common.mail.recipients import RecipientSpec
from common.mail.site import MailSite
from common.migrate import upgrade
from common.models.mail import CloudJob
from common.nats_server import EmbeddedNatsServer
from common.templating import render
from services.mailer.providers.base import OutgoingMessage
from services.mailer.providers.mime import build_mime

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-" + "x" * 32
SENDER = "noreply@school.example"
SUBJECT = "Welcome to {{course}}, {{firstname}}"
HTML = (
    "<p>Dear {{firstname}} {{lastname}},</p><p>Your account for {{course}} is ready. "
    "Sign in as <b>{{username}}</b> with the temporary password {{password}}.</p>"
)
QUICK = {"n": 5_000, "scale_n": 4_000, "quota": 300.0, "quota_s": 14}
FULL = {"n": 50_000, "scale_n": 20_000, "quota": 400.0, "quota_s": 25}
COMPANY = 7


# -- data ---------------------------------------------------------------------------------------
def recipient_data(i: int) -> dict:
    return {"firstname": f"Learner{i}", "lastname": "Example", "username": f"learner{i}",
            "password": f"Tmp-{i:06d}-x", "course": "Fire Safety"}  # fmt: skip


def address(run: str, i: int) -> str:
    return f"{run}.learner{i}@learners.example"


async def baseline(port: int, n: int) -> float:
    """The bare loop: render, build the same MIME, send on one connection, one at a time."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    started = time.perf_counter()
    for i in range(n):
        variables = {**recipient_data(i), "email": address("base", i)}
        message = OutgoingMessage(
            recipient_id=i, to=address("base", i),
            subject=render(SUBJECT, variables, escape_html=False), html=render(HTML, variables),
        )  # fmt: skip
        mime = build_mime(message, from_email=SENDER, from_name=None, reply_to=None)
        await client.send_message(mime, sender=SENDER, recipients=[message.to])
    elapsed = time.perf_counter() - started
    await client.quit()
    return elapsed


class Stack:
    """An app DB, a nats-server and mailer processes in a temporary folder."""

    def __init__(self, root: Path, sink_port: int) -> None:
        self.root = root
        self.url = f"sqlite:///{root / 'app.db'}"
        upgrade(self.url)
        self.appdb = AppDB(self.url)
        self.nats = EmbeddedNatsServer(root / "nats").start()
        self.sink_port = sink_port
        self.mailers: list[subprocess.Popen] = []

    def configure(self, rate: float) -> None:
        values = {"provider": "smtp", "enabled": True, "sender_email": SENDER,
                  "chunk_size": 250, "rate_per_s": rate, "offloaded_events": [],
                  "provider_config": {"host": "127.0.0.1", "port": self.sink_port,
                                      "security": "none"}}  # fmt: skip
        with self.appdb.transaction() as session:
            # The sink is on loopback, which only the site may allow (as the mailers' env does).
            save_config(
                session,
                COMPANY,
                values,
                secret_key=SECRET,
                actor_id=None,
                actor_is_site_admin=True,
                site=MailSite(allow_private_smtp_hosts=True),
            )

    def start_mailers(self, count: int) -> None:
        env = {**os.environ, "DATABASE_URL": self.url, "NATS_URL": self.nats.url,
               "SECRET_KEY": SECRET, "MANIREPORTS_INSTANCE": str(self.root / "instance"),
               "MOODLE_DATABASE_URL": f"sqlite:///{self.root / 'moodle.db'}",
               "MAIL_SMTP_ALLOW_PRIVATE_HOSTS": "true"}  # fmt: skip
        for index in range(len(self.mailers), count):
            log = open(self.root / f"mailer-{index}.log", "ab")  # noqa: SIM115
            self.mailers.append(subprocess.Popen(
                [sys.executable, "-m", "services.mailer"], env=env, cwd=REPO,
                stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        asyncio.run(self._wait_healthy(count))

    def stop_mailers(self) -> None:
        for process in self.mailers:
            process.terminate()
        for process in self.mailers:
            process.wait(30)
        self.mailers.clear()

    async def _wait_healthy(self, count: int) -> None:
        bus = await Bus.connect(self.nats.url, name="bench")
        await bus.ensure_streams()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replies = await bus.gather("mr.health.mailer", {}, wait_s=0.3)
            if len(replies) >= count:
                break
        await bus.close()

    def create_job(self, run: str, n: int) -> int:
        recipients = (RecipientSpec(email=address(run, i), data=recipient_data(i))
                      for i in range(n))  # fmt: skip
        with self.appdb.transaction() as session:
            job = create_job(session, company_id=COMPANY, job_type="bulk", recipients=recipients,
                             source="api", chunk_size=250, subject=SUBJECT, html=HTML)  # fmt: skip
            return job.id

    def run_job(self, job_id: int) -> float:
        async def publish() -> None:
            bus = await Bus.connect(self.nats.url, name="bench")
            assert await dispatch_async(bus.publish, job_id)
            await bus.close()

        started = time.perf_counter()
        asyncio.run(publish())
        while True:
            with self.appdb.transaction() as session:
                status = session.scalar(select(CloudJob.status).where(CloudJob.id == job_id))
            if status in ("completed", "partially_failed", "failed"):
                return time.perf_counter() - started
            time.sleep(0.05)

    def close(self) -> None:
        self.stop_mailers()
        self.nats.stop()
        self.appdb.dispose()


def max_window(times: list[float], window_s: float = 10.0) -> int:
    best = 0
    for i, start in enumerate(times):
        best = max(best, bisect.bisect_left(times, start + window_s) - i)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-scale", action="store_true", help="only the ratio run")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    n = size["n"]
    sink = Sink()
    root = Path(tempfile.mkdtemp(prefix="bench-mail-"))
    stack = Stack(root, sink.port)
    result: dict = {"bench": "mail", "n": n}
    try:
        stack.configure(rate=0)
        job_id = stack.create_job("main", n)
        stack.start_mailers(1)
        elapsed = stack.run_job(job_id)
        distinct, total = sink.stats()
        project = n / elapsed
        sink.reset()
        base_elapsed = asyncio.run(baseline(sink.port, n))
        baseline_rate = n / base_elapsed
        sink.reset()
        print(f"project: {n} in {elapsed:.1f}s = {project:.0f}/s; "
              f"baseline: {base_elapsed:.1f}s = {baseline_rate:.0f}/s", flush=True)  # fmt: skip
        result.update(msgs_per_s=round(project), baseline_msgs_per_s=round(baseline_rate),
                      ratio=round(project / baseline_rate, 3), lost=n - distinct,
                      duplicates=total - distinct)  # fmt: skip
        if not args.no_scale:
            result["scaling"], result["quota"] = scaling(stack, sink, size)
    finally:
        stack.close()
        sink.stop()
    print(json.dumps(result))


def scaling(stack: Stack, sink: Sink, size: dict) -> tuple[dict, dict]:
    throughput: dict[str, float] = {}
    quota: dict[str, dict] = {}
    for mailers in (1, 2, 4):
        stack.stop_mailers()
        stack.configure(rate=0)
        job_id = stack.create_job(f"scale{mailers}", size["scale_n"])
        stack.start_mailers(mailers)
        elapsed = stack.run_job(job_id)
        distinct, total = sink.stats()
        sink.reset()
        throughput[str(mailers)] = round(size["scale_n"] / elapsed)
        lost, duplicates = size["scale_n"] - distinct, total - distinct
        print(f"{mailers} mailer(s): {throughput[str(mailers)]}/s "
              f"(lost {lost}, duplicates {duplicates})", flush=True)  # fmt: skip
    rate = size["quota"]
    for mailers in (2, 4):
        stack.stop_mailers()
        stack.configure(rate=rate)
        count = int(rate * size["quota_s"])
        job_id = stack.create_job(f"quota{mailers}", count)
        stack.start_mailers(mailers)
        stack.run_job(job_id)
        times = sink.times()
        distinct, total = sink.stats()
        sink.reset()
        window = max_window(times)
        quota[str(mailers)] = {
            "q": rate, "max_10s": window, "limit_10s": round(rate * 10),
            "over_pct": round(100 * (window / (rate * 10) - 1), 2),
            "lost": count - distinct, "duplicates": total - distinct,
        }  # fmt: skip
        print(f"quota {rate}/s with {mailers} mailers: max {window} in any 10 s", flush=True)
    return throughput, quota


if __name__ == "__main__":
    main()
