"""The message bus: NATS JetStream streams, durable consumers, publish and request/reply.

Every published command carries an id in the `Nats-Msg-Id` header, so JetStream drops a
re-publish of the same id inside the stream's duplicate window; consumers are durable pull
consumers with explicit acks, so a message a dead worker held is redelivered after ack_wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BadRequestError, NotFoundError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
# JetStream keeps a KV bucket in a stream of this name prefix (KV_<bucket>).
KV_STREAM_PREFIX = "KV_"
# JetStream error codes: a stream of that name exists with another configuration; more
# replicas than this deployment can hold (not clustered; too few servers).
STREAM_EXISTS_OTHERWISE = 10058
REPLICA_REFUSALS = frozenset({10074, 10005})
DUPLICATE_WINDOW_S = 120.0


class BusConfigError(RuntimeError):
    """The bus cannot be set up as configured (more replicas than servers)."""


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    work_queue: bool = True
    max_age_s: float = 7 * 86400


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    durable: str
    filter_subject: str
    ack_wait_s: float = 60.0
    max_deliver: int = 8
    max_ack_pending: int = 1000


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("HEARTBEATS", ("mr.heartbeat",)),
    StreamSpec("COMMANDS", ("mr.cmd.>",)),
    StreamSpec("MAIL", ("mr.mail.chunk",)),
    # Dead letters are kept for inspection and admin retry, not consumed away.
    StreamSpec("MAIL_DEAD", ("mr.mail.dead",), work_queue=False, max_age_s=30 * 86400),
)


def command_subject(service: str, command: str) -> str:
    return f"mr.cmd.{service}.{command}"


def health_subject(service: str) -> str:
    return f"mr.health.{service}"


HEALTH_ALL = "mr.health.all"


def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def decode(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("message payload is not a JSON object")
    return value


def message_id(msg: Msg) -> str | None:
    return (msg.headers or {}).get(MSG_ID_HEADER)


class Bus:
    """One NATS connection with its JetStream context. Reconnects forever by itself."""

    def __init__(self, nc: Client, js: JetStreamContext, *, replicas: int = 1):
        self.nc = nc
        self.js = js
        # NATS_REPLICAS: the copies of each stream and KV bucket this process creates or
        # updates; every process of a deployment runs with the same value.
        self.replicas = replicas

    @classmethod
    async def connect(
        cls, url: str, name: str, *, connect_timeout_s: float = 5.0, replicas: int = 1
    ) -> Bus:
        async def on_disconnected() -> None:
            log.warning("bus disconnected; reconnecting")

        async def on_reconnected() -> None:
            log.info("bus reconnected")

        async def on_error(exc: Exception) -> None:
            log.debug("bus error: %s", exc)

        nc = await nats.connect(
            servers=url.split(","),
            name=name,
            connect_timeout=connect_timeout_s,
            reconnect_time_wait=0.5,
            # Bounded while first connecting, so a wrong URL fails start-up...
            max_reconnect_attempts=3,
            allow_reconnect=True,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            error_cb=on_error,
        )
        # ...and unbounded once connected: a restarted nats-server is waited for.
        nc.options["max_reconnect_attempts"] = -1
        return cls(nc, nc.jetstream(), replicas=replicas)

    async def ensure_streams(self, streams: tuple[StreamSpec, ...] = STREAMS) -> None:
        """Create or update each stream; safe to run from every process at every start."""
        for spec in streams:
            config = StreamConfig(
                name=spec.name,
                subjects=list(spec.subjects),
                retention=RetentionPolicy.WORK_QUEUE if spec.work_queue else RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=spec.max_age_s,
                duplicate_window=DUPLICATE_WINDOW_S,
                num_replicas=self.replicas,
            )
            try:
                async with self._replica_errors(spec.name):
                    await self.js.add_stream(config)
                await self._wait_replicas_current(spec.name)
            except BadRequestError as exc:
                if exc.err_code != STREAM_EXISTS_OTHERWISE:
                    raise
                # It exists with another configuration (a new NATS_REPLICAS, say): an update
                # keeps its messages; the server copies them to the new replicas.
                await self._update_stream(config)

    async def ensure_consumer(self, spec: ConsumerSpec) -> None:
        config = ConsumerConfig(
            durable_name=spec.durable,
            filter_subject=spec.filter_subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=spec.ack_wait_s,
            max_deliver=spec.max_deliver,
            max_ack_pending=spec.max_ack_pending,
        )
        try:
            info = await self.js.consumer_info(spec.stream, spec.durable)
        except NotFoundError:
            await self.js.add_consumer(spec.stream, config)
            return
        if (
            info.config.ack_wait != spec.ack_wait_s
            or info.config.max_deliver != spec.max_deliver
            or info.config.max_ack_pending != spec.max_ack_pending
        ):
            await self.js.add_consumer(spec.stream, config)  # same durable: an update

    async def pull(self, spec: ConsumerSpec) -> JetStreamContext.PullSubscription:
        await self.ensure_consumer(spec)
        return await self.js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream)

    async def publish(
        self, subject: str, payload: Mapping[str, Any], *, msg_id: str | None = None
    ) -> str:
        """Publish to JetStream and wait for the stream's ack; returns the message id used."""
        msg_id = msg_id or uuid.uuid4().hex
        await self.js.publish(subject, encode(payload), headers={MSG_ID_HEADER: msg_id})
        return msg_id

    async def request(
        self, subject: str, payload: Mapping[str, Any], *, timeout_s: float = 2.0
    ) -> dict[str, Any]:
        reply = await self.nc.request(subject, encode(payload), timeout=timeout_s)
        return decode(reply.data)

    async def gather(
        self, subject: str, payload: Mapping[str, Any], *, wait_s: float = 1.0
    ) -> list[dict[str, Any]]:
        """Ask everyone listening on `subject` and collect every reply that arrives in time."""
        inbox = self.nc.new_inbox()
        replies: list[dict[str, Any]] = []

        async def collect(msg: Msg) -> None:
            if not msg.data:  # a "no responders" status, not a reply
                return
            try:
                replies.append(decode(msg.data))
            except ValueError:
                log.warning("ignoring malformed reply on %s", subject)

        sub = await self.nc.subscribe(inbox, cb=collect)
        try:
            await self.nc.publish(subject, encode(payload), reply=inbox)
            await self.nc.flush()
            await asyncio.sleep(wait_s)
        finally:
            await sub.unsubscribe()
        return replies

    async def key_value(self, bucket: str, *, ttl_s: float | None = None) -> KeyValue:
        """The bucket, created with NATS_REPLICAS copies, or updated to them if it exists."""
        try:
            info = await self.js.stream_info(KV_STREAM_PREFIX + bucket)
        except NotFoundError:
            config = KeyValueConfig(
                bucket=bucket,
                ttl=ttl_s,
                history=1,
                storage=StorageType.FILE,
                replicas=self.replicas,
            )
            try:
                async with self._replica_errors(KV_STREAM_PREFIX + bucket):
                    kv = await self.js.create_key_value(config)
                await self._wait_replicas_current(KV_STREAM_PREFIX + bucket)
                return kv
            except BadRequestError as exc:
                if exc.err_code != STREAM_EXISTS_OTHERWISE:
                    raise
                # Another process created it first (its settings a little otherwise): use it.
        else:
            if info.config.num_replicas != self.replicas:
                await self._update_stream(replace(info.config, num_replicas=self.replicas))
        return await self.js.key_value(bucket)

    async def _update_stream(self, config: StreamConfig) -> None:
        async with self._replica_errors(config.name):
            await self.js.update_stream(config)
        assert config.name is not None
        await self._wait_replicas_current(config.name)

    async def _wait_replicas_current(self, stream: str, timeout_s: float = 30.0) -> None:
        """Until `stream` has a leader and every replica has caught up: a stream just created
        on a cluster answers publishes with "no responders" until it has elected a leader, and
        one just grown to more replicas refuses new consumers ("insufficient resources") while
        its copies are being made."""
        deadline = time.monotonic() + timeout_s
        while True:
            cluster = (await self.js.stream_info(stream)).cluster
            peers = (cluster.replicas or []) if cluster else []
            if cluster is None or (
                cluster.leader and len(peers) + 1 >= self.replicas and all(p.current for p in peers)
            ):
                return
            if time.monotonic() > deadline:
                raise BusConfigError(f"NATS_REPLICAS: {stream} did not reach {self.replicas} "
                                     f"current replicas in {timeout_s:g}s")  # fmt: skip
            await asyncio.sleep(0.1)

    @asynccontextmanager
    async def _replica_errors(self, stream: str | None) -> AsyncIterator[None]:
        """A server refusing NATS_REPLICAS (no cluster, too few servers) says so by name."""
        try:
            yield
        except APIError as exc:
            if self.replicas > 1 and exc.err_code in REPLICA_REFUSALS:
                raise BusConfigError(
                    f"NATS_REPLICAS: {stream} cannot have {self.replicas} replicas here "
                    f"({exc.description}); it needs a JetStream cluster of at least "
                    f"{self.replicas} servers"
                ) from exc
            raise

    async def close(self) -> None:
        # Not drain(): callers have already acked or NAKed what they hold, and draining a
        # pull subscription waits out its full timeout.
        if not self.nc.is_closed:
            try:
                await self.nc.flush(timeout=2)
            except Exception as exc:  # noqa: BLE001 - reconnecting (a server died): close anyway
                log.warning("bus: unflushed at close: %s", exc)
            await self.nc.close()
