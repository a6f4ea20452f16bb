"""Services as real processes on a real nats-server: probes, crashes, restarts, shutdown."""

import asyncio
import signal
import time

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.bus import Bus, ConsumerSpec, command_subject
from common.migrate import upgrade
from common.models.ops import ProcessedMessage
from common.nats_server import EmbeddedNatsServer
from common.service import Consumption, Worker
from tests.support import make_settings, service_env, wait_for


@pytest.fixture
def appdb(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    db = AppDB(url)
    yield db
    db.dispose()


def processed_ids(appdb, consumer):
    with appdb.transaction() as session:
        rows = session.execute(
            select(ProcessedMessage.msg_id).where(ProcessedMessage.consumer == consumer)
        )
        return sorted(r[0] for r in rows)


def publish(url, subject, payload, msg_id):
    async def go():
        bus = await Bus.connect(url, name="test")
        await bus.ensure_streams()
        await bus.publish(subject, payload, msg_id=msg_id)
        await bus.close()

    asyncio.run(go())


def consumer_state(url, durable):
    async def go():
        bus = await Bus.connect(url, name="test")
        info = await bus.js.consumer_info("COMMANDS", durable)
        await bus.close()
        return info

    return asyncio.run(go())


def health(url, service):
    async def go():
        bus = await Bus.connect(url, name="test")
        replies = await bus.gather(f"mr.health.{service}", {}, wait_s=0.5)
        await bus.close()
        return replies

    return asyncio.run(go())


@pytest.fixture
def fresh_nats(tmp_path):
    """A nats-server of this test's own: these tests kill and restart it."""
    server = EmbeddedNatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


def test_every_service_answers_health_and_runs_a_probe(tmp_path, fresh_nats, appdb, spawn_service):
    env = service_env(tmp_path, fresh_nats.url)
    for name in ("aggregator", "mailer", "sync", "scheduler"):
        spawn_service(name, env)
    for name in ("aggregator", "mailer", "sync", "scheduler"):
        replies = wait_for(lambda n=name: health(fresh_nats.url, n), message=f"{name} health")
        assert replies[0]["healthy"] is True
    for name in ("aggregator", "mailer", "sync"):
        publish(fresh_nats.url, command_subject(name, "probe"), {}, msg_id=f"probe-{name}")
        wait_for(lambda n=name: processed_ids(appdb, f"{n}.probe"), message=f"{name} probe")
        assert processed_ids(appdb, f"{name}.probe") == [f"probe-{name}"]


def test_unknown_command_is_terminated_not_retried(tmp_path, fresh_nats, appdb, spawn_service):
    env = service_env(tmp_path, fresh_nats.url)
    proc = spawn_service("sync", env)
    publish(fresh_nats.url, command_subject("sync", "no_such_command"), {}, msg_id="bad-1")
    publish(fresh_nats.url, command_subject("sync", "probe"), {}, msg_id="good-1")
    wait_for(lambda: processed_ids(appdb, "sync.probe") == ["good-1"])
    info = consumer_state(fresh_nats.url, "sync")
    assert info.num_ack_pending == 0 and info.num_pending == 0
    assert "unknown command 'no_such_command'" in proc.output()


def test_sigkill_mid_message_is_redelivered_to_another_instance(
    tmp_path, fresh_nats, appdb, spawn_service
):
    env = service_env(tmp_path, fresh_nats.url, BUS_ACK_WAIT_S="2")
    first = spawn_service("aggregator", env)
    wait_for(lambda: health(fresh_nats.url, "aggregator"))
    publish(fresh_nats.url, command_subject("aggregator", "probe"), {"hold_s": 6}, "held-1")
    wait_for(lambda: consumer_state(fresh_nats.url, "aggregator").num_ack_pending == 1)
    first.kill()
    assert processed_ids(appdb, "aggregator.probe") == []
    spawn_service("aggregator", env)
    wait_for(lambda: processed_ids(appdb, "aggregator.probe") == ["held-1"], timeout_s=60)
    replies = health(fresh_nats.url, "aggregator")
    assert [r["processed"] for r in replies] == [1]


def test_sigterm_finishes_the_in_flight_message_then_exits(
    tmp_path, fresh_nats, appdb, spawn_service
):
    env = service_env(tmp_path, fresh_nats.url)
    proc = spawn_service("sync", env)
    wait_for(lambda: health(fresh_nats.url, "sync"))
    publish(fresh_nats.url, command_subject("sync", "probe"), {"hold_s": 2}, "inflight-1")
    wait_for(lambda: consumer_state(fresh_nats.url, "sync").num_ack_pending == 1)
    assert proc.terminate() == 0
    assert processed_ids(appdb, "sync.probe") == ["inflight-1"]
    info = consumer_state(fresh_nats.url, "sync")
    assert info.num_ack_pending == 0 and info.num_pending == 0


def test_services_reconnect_after_nats_server_restarts(tmp_path, fresh_nats, appdb, spawn_service):
    env = service_env(tmp_path, fresh_nats.url)
    proc = spawn_service("mailer", env)
    wait_for(lambda: health(fresh_nats.url, "mailer"))
    fresh_nats.kill()
    fresh_nats.start()
    publish(fresh_nats.url, command_subject("mailer", "probe"), {}, msg_id="after-restart")
    wait_for(lambda: processed_ids(appdb, "mailer.probe") == ["after-restart"], timeout_s=30)
    assert proc.process.poll() is None


def test_only_one_of_two_schedulers_fires_and_the_other_takes_over(
    tmp_path, fresh_nats, appdb, spawn_service
):
    env = service_env(
        tmp_path,
        fresh_nats.url,
        SCHEDULER_LEASE_TTL_S="2",
        TASK_INTERVALS="retention_cleanup=1",
    )
    first = spawn_service("scheduler", env)
    second = spawn_service("scheduler", env)

    def both_fired_or_leading():
        replies = health(fresh_nats.url, "scheduler")
        return replies if len(replies) == 2 and any(r["fired"] >= 3 for r in replies) else None

    replies = wait_for(both_fired_or_leading, timeout_s=30)
    leaders = [r for r in replies if r["leader"]]
    assert len(leaders) == 1
    assert [r["fired"] for r in replies if not r["leader"]] == [0]

    leader_pid = int(leaders[0]["instance"].rsplit(":", 1)[1])
    (first if first.process.pid == leader_pid else second).process.send_signal(signal.SIGKILL)

    def new_leader_fires():
        replies = health(fresh_nats.url, "scheduler")
        return len(replies) == 1 and replies[0]["leader"] and replies[0]["fired"] >= 1

    wait_for(new_leader_fires, timeout_s=30)


class FlakyWorker(Worker):
    """A service whose handler raises ValueError the first time it sees a message (a bug, or
    a state that passes), and records what it handled."""

    name = "flaky"

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.seen: list[int] = []

    def consumptions(self) -> list[Consumption]:
        spec = ConsumerSpec("COMMANDS", "flaky", "mr.cmd.flaky.>", ack_wait_s=10, max_deliver=5)
        return [Consumption(spec, handle=self.handle)]

    async def handle(self, payload, msg):  # type: ignore[no-untyped-def]
        self.seen.append(payload["n"])
        if self.seen.count(payload["n"]) == 1:
            raise ValueError("the handler failed this once")


def test_a_handler_valueerror_is_retried_and_only_an_unreadable_payload_is_dropped(
    tmp_path, fresh_nats
):
    async def go():  # type: ignore[no-untyped-def]
        worker = FlakyWorker(make_settings(tmp_path), await Bus.connect(fresh_nats.url, "flaky"))
        running = asyncio.create_task(worker.run())
        bus = await Bus.connect(fresh_nats.url, name="test")
        await bus.ensure_streams()
        await bus.js.publish("mr.cmd.flaky.do", b"{not json", headers={"Nats-Msg-Id": "bad"})
        await bus.publish("mr.cmd.flaky.do", {"n": 1}, msg_id="good")
        deadline = time.monotonic() + 20
        while worker.seen != [1, 1] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        info = await bus.js.consumer_info("COMMANDS", "flaky")
        worker.request_stop()
        await running
        await bus.close()
        return worker, info

    worker, info = asyncio.run(go())

    assert worker.seen == [1, 1]  # delivered again after the ValueError, then handled
    assert (worker.processed, worker.failed) == (1, 2)  # failed: the first try, the unreadable
    assert info.num_pending == 0 and info.num_ack_pending == 0  # the unreadable one: dropped


class StuckWorker(Worker):
    """A service whose handler outlives the shutdown grace (a hung call)."""

    name = "stuck"
    shutdown_grace_s = 0.5

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.started = asyncio.Event()

    def consumptions(self) -> list[Consumption]:
        spec = ConsumerSpec("COMMANDS", "stuck", "mr.cmd.stuck.>", ack_wait_s=60)
        return [Consumption(spec, handle=self.handle)]

    async def handle(self, payload, msg):  # type: ignore[no-untyped-def]
        self.started.set()
        await asyncio.sleep(3600)


def test_a_message_unfinished_after_the_grace_is_handed_back_at_once(tmp_path, fresh_nats):
    """Not left to ack_wait (60 s here): the next replica gets it within seconds."""

    async def go():  # type: ignore[no-untyped-def]
        worker = StuckWorker(make_settings(tmp_path), await Bus.connect(fresh_nats.url, "stuck"))
        running = asyncio.create_task(worker.run())
        bus = await Bus.connect(fresh_nats.url, name="test")
        await bus.ensure_streams()
        await bus.publish("mr.cmd.stuck.do", {"n": 1}, msg_id="stuck-1")
        await asyncio.wait_for(worker.started.wait(), 20)
        worker.request_stop()
        await asyncio.wait_for(running, 20)
        sub = await bus.js.pull_subscribe("mr.cmd.stuck.>", durable="stuck", stream="COMMANDS")
        started = time.monotonic()
        msgs = await sub.fetch(1, timeout=5)
        waited = time.monotonic() - started
        for msg in msgs:
            await msg.ack()
        await bus.close()
        return msgs, waited

    msgs, waited = asyncio.run(go())
    assert [m.metadata.num_delivered for m in msgs] == [2]
    assert waited < 5
