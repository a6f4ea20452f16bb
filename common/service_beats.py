"""Each worker replica's last heartbeat, kept in a KV bucket so `manireports status` can show
replicas that stopped answering (and when they were last heard of) beside those answering now.

Every replica writes `<service>.<instance>` every BEAT_INTERVAL_S; an entry not rewritten for
BEAT_TTL_S expires, so a replica gone for good drops out of the list by itself. A replica
stopping cleanly writes a last beat saying so.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError

from common.bus import KV_STREAM_PREFIX, Bus, decode, encode

log = logging.getLogger(__name__)

BUCKET = "mr_service_beats"
BEAT_INTERVAL_S = 5.0
BEAT_TTL_S = 15 * 60.0


def beat_key(service: str, instance: str) -> str:
    # KV keys allow letters, digits and -_=./ only; an instance is host:pid.
    return (
        re.sub(r"[^A-Za-z0-9_=-]", "_", service) + "." + re.sub(r"[^A-Za-z0-9_=-]", "_", instance)
    )


async def report_alive(
    bus: Bus, health: Callable[[], dict[str, Any]], interval_s: float = BEAT_INTERVAL_S
) -> None:
    """Write this replica's beat until cancelled; bus hiccups are logged and outlived."""
    kv = None
    while True:
        try:
            if kv is None:
                kv = await bus.key_value(BUCKET, ttl_s=BEAT_TTL_S)
            await write_beat(kv, health())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the next beat tries again
            log.debug("service beat not written: %s", exc)
        await asyncio.sleep(interval_s)


async def write_beat(kv: Any, state: dict[str, Any]) -> None:
    beat = {"service": state["service"], "instance": state["instance"],
            "healthy": bool(state.get("healthy")), "at": time.time()}  # fmt: skip
    await kv.put(beat_key(beat["service"], beat["instance"]), encode(beat))


async def final_beat(bus: Bus, state: dict[str, Any]) -> None:
    try:
        await write_beat(await bus.key_value(BUCKET, ttl_s=BEAT_TTL_S), state)
    except Exception as exc:  # noqa: BLE001 - stopping anyway
        log.debug("last service beat not written: %s", exc)


async def read_beats(bus: Bus) -> list[dict[str, Any]]:
    """Every replica heard of in the last BEAT_TTL_S, newest first. Only reads: a reader
    (the status command) does not create the bucket or change its replicas.

    The keys come from the stream's per-subject counts (one API request), not `kv.keys()`:
    that one watches the bucket and, on a loaded machine, can be told "nothing pending"
    before the entries already delivered to it are handed over, and so list no keys."""
    prefix = f"$KV.{BUCKET}."  # the subject NATS stores each key of the bucket under
    try:
        info = await bus.js.stream_info(KV_STREAM_PREFIX + BUCKET, subjects_filter=prefix + ">")
        kv = await bus.js.key_value(BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return []
    beats = []
    for subject in info.state.subjects or {}:
        try:
            entry = await kv.get(subject[len(prefix) :])
        except KeyNotFoundError:  # expired or deleted (a marker left): not a replica now
            continue
        if entry.value:
            beats.append(decode(entry.value))
    return sorted(beats, key=lambda b: -float(b.get("at", 0)))
