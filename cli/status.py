"""`manireports status`: each service's replicas (asked over the bus now) and their last
heartbeats (common/service_beats.py), and each stream's depth, backlog, redeliveries and
consumers (common/bus_figures.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from cli.worker import SERVICES
from common.bus import HEALTH_ALL, Bus
from common.bus_figures import StreamFigures, stream_figures
from common.service_beats import read_beats
from common.settings import SettingsError, load_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    status = subparsers.add_parser(
        "status", help="every service's replicas and heartbeats, every stream's backlog"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--wait", type=float, default=1.0, help="seconds to collect replies")
    status.set_defaults(func=run_status)


@dataclass
class BusStatus:
    replies: list[dict[str, Any]]  # health replies of the replicas answering now
    beats: list[dict[str, Any]]  # every replica heard of lately, newest beat first
    streams: list[StreamFigures]


async def collect_status(nats_url: str, wait_s: float) -> BusStatus:
    bus = await Bus.connect(nats_url, name="manireports-status")
    try:
        replies = await bus.gather(HEALTH_ALL, {}, wait_s=wait_s)
        return BusStatus(replies, await read_beats(bus), await stream_figures(bus))
    finally:
        await bus.close()


def services_view(state: BusStatus) -> dict[str, dict[str, Any]]:
    view = {}
    for name in SERVICES:
        replies = [r for r in state.replies if r.get("service") == name]
        beats = [b for b in state.beats if b.get("service") == name]
        view[name] = {
            "replicas": len(replies),
            "healthy": sum(1 for r in replies if r.get("healthy")),
            "last_heartbeat": beats[0]["at"] if beats else None,
            "replies": replies,
            # Replicas heard of lately that did not answer now: stopped, hung or cut off.
            "silent": [b for b in beats
                       if b["instance"] not in {r.get("instance") for r in replies}],
        }  # fmt: skip
    return view


def run_status(args: argparse.Namespace) -> int:
    settings = load_settings()
    nats_url = settings.nats_url or _embedded_url(settings)
    try:
        state = asyncio.run(collect_status(nats_url, args.wait))
    except OSError as exc:
        raise SettingsError(f"NATS_URL: cannot reach {nats_url}: {exc}") from None
    services = services_view(state)
    if args.json:
        print(json.dumps({"services": services,
                          "streams": [s.as_dict() for s in state.streams]}, indent=2))  # fmt: skip
    else:
        print_services(services, time.time())
        print()
        print_streams(state.streams)
    return 0 if all(s["healthy"] for s in services.values()) else 1


def print_services(services: dict[str, dict[str, Any]], now: float) -> None:
    print(f"{'service':<11} {'state':<8} {'replicas':<20} last heartbeat")
    for name, s in services.items():
        state = "healthy" if s["healthy"] else "DOWN"
        replicas = f"{s['healthy']}/{s['replicas']} healthy"
        last = _ago(now, s["last_heartbeat"])
        print(f"{name:<11} {state:<8} {replicas:<20} {last}")
        for beat in s["silent"]:
            print(f"  {beat['instance']}: not answering, last heartbeat {_ago(now, beat['at'])}")


def print_streams(streams: list[StreamFigures]) -> None:
    print(f"{'stream':<20} {'messages':>9} {'pending':>8} {'unacked':>8} {'redelivered':>12} "
          f"{'consumers':>10} {'replicas':>9}")  # fmt: skip
    for s in streams:
        print(f"{s.name:<20} {s.messages:>9} {s.pending:>8} {s.ack_pending:>8} "
              f"{s.redelivered:>12} {len(s.consumers):>10} {s.replicas:>9}")  # fmt: skip
        for c in s.consumers:
            print(f"  {c.name:<18} {'':>9} {c.pending:>8} {c.ack_pending:>8} {c.redelivered:>12}")


def _ago(now: float, at: float | None) -> str:
    if at is None:
        return "never"
    seconds = max(0, round(now - float(at)))
    return f"{seconds}s ago" if seconds < 120 else f"{seconds // 60} min ago"


def _embedded_url(settings) -> str:  # type: ignore[no-untyped-def]
    """`manireports up` writes the embedded server's URL to the instance folder."""
    path = settings.instance_dir / "nats.url"
    if not path.exists():
        raise SettingsError(
            "NATS_URL: unset and no embedded nats-server is running (`manireports up`)"
        )
    return path.read_text().strip()
