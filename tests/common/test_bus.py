import asyncio

import pytest

from common.bus import Bus, ConsumerSpec, command_subject


def run(coro):
    return asyncio.run(coro)


async def connected(nats_server):
    bus = await Bus.connect(nats_server.url, name="test")
    await bus.ensure_streams()
    return bus


def test_ensure_streams_is_idempotent(nats_server):
    async def scenario():
        bus = await connected(nats_server)
        await bus.ensure_streams()
        names = [s.config.name for s in await bus.js.streams_info()]
        await bus.close()
        return names

    names = run(scenario())
    assert {"HEARTBEATS", "COMMANDS", "MAIL", "MAIL_DEAD"} <= set(names)


def test_publish_with_the_same_id_is_stored_once(nats_server):
    spec = ConsumerSpec("COMMANDS", "test-dedupe", command_subject("dedupe", ">"), ack_wait_s=5)

    async def scenario():
        bus = await connected(nats_server)
        subject = command_subject("dedupe", "ping")
        await bus.publish(subject, {"n": 1}, msg_id="same-id")
        await bus.publish(subject, {"n": 2}, msg_id="same-id")
        await bus.publish(subject, {"n": 3}, msg_id="other-id")
        sub = await bus.pull(spec)
        msgs = await sub.fetch(10, timeout=1)
        for msg in msgs:
            await msg.ack()
        await bus.close()
        return [m.data for m in msgs]

    assert run(scenario()) == [b'{"n":1}', b'{"n":3}']


def test_request_reply_and_gather(nats_server):
    async def scenario():
        bus = await connected(nats_server)

        async def answer_a(msg):
            await msg.respond(b'{"who":"a"}')

        async def answer_b(msg):
            await msg.respond(b'{"who":"b"}')

        await bus.nc.subscribe("test.ask", cb=answer_a)
        await bus.nc.subscribe("test.ask", cb=answer_b)
        one = await bus.request("test.ask", {}, timeout_s=2)
        everyone = await bus.gather("test.ask", {}, wait_s=0.5)
        await bus.close()
        return one, everyone

    one, everyone = run(scenario())
    assert one["who"] in {"a", "b"}
    assert sorted(r["who"] for r in everyone) == ["a", "b"]


def test_connect_to_nothing_fails_clearly():
    async def scenario():
        await Bus.connect("nats://127.0.0.1:1", name="test", connect_timeout_s=0.5)

    with pytest.raises(Exception):  # noqa: B017 - nats-py raises its own NoServersError
        run(scenario())
