"""`manireports worker-health NAME`: is this container's worker ready (or alive)? For probes.

A worker answers its health subject (`mr.health.NAME`) with its state; its instance is
`host:pid`, and a pod's hostname is its own name, so the probe keeps only the replies of
processes on this host and judges its own container, not some other replica.

- readiness (default): exit 0 when a worker on this host answers healthy (connected to the bus
  and not shutting down), 1 otherwise, so a draining or disconnected pod leaves the rotation.
- `--liveness`: exit 1 only when the bus answers and no worker on this host does (its loop is
  stuck or it never started). A bus that cannot be reached says nothing about this process,
  and must not make Kubernetes restart every worker at once: exit 0.

Also `python -m cli.worker_health NAME`, which skips the other subcommands' imports: a probe
runs every few seconds in every pod, and a lighter start is CPU saved.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from typing import Any

SERVICES = ("aggregator", "scheduler", "mailer", "sync")
READY, NOT_READY = 0, 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    probe = subparsers.add_parser("worker-health", help="probe this host's worker (for k8s)")
    _arguments(probe)
    probe.set_defaults(func=run_probe)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=SERVICES)
    parser.add_argument(
        "--liveness", action="store_true", help="fail only when the bus answers and we do not"
    )
    parser.add_argument("--wait", type=float, default=1.0, help="seconds to collect replies")


def own_replies(replies: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    """The replies of worker processes on `host` (instance `host:pid`)."""
    return [r for r in replies if str(r.get("instance", "")).rpartition(":")[0] == host]


def verdict(replies: list[dict[str, Any]] | None, host: str, *, liveness: bool) -> int:
    """None: the bus could not be reached."""
    if replies is None:
        return READY if liveness else NOT_READY
    mine = own_replies(replies, host)
    if liveness:
        return READY if mine else NOT_READY
    return READY if any(r.get("healthy") is True for r in mine) else NOT_READY


async def ask(url: str, name: str, wait_s: float) -> list[dict[str, Any]] | None:
    from common.bus import Bus, health_subject

    try:
        bus = await Bus.connect(url, name=f"manireports-probe-{name}", connect_timeout_s=2.0)
    except Exception:  # noqa: BLE001 - any failure to connect means "bus unreachable"
        return None
    try:
        return await bus.gather(health_subject(name), {}, wait_s=wait_s)
    finally:
        await bus.nc.close()


def run_probe(args: argparse.Namespace) -> int:
    url = os.environ.get("NATS_URL")
    if not url:
        print("worker-health: NATS_URL is not set", file=sys.stderr)
        return NOT_READY
    # The bus's reconnect warnings are noise in a probe's output; its verdict is the line.
    logging.getLogger("common.bus").setLevel(logging.ERROR)
    host = socket.gethostname()
    replies = asyncio.run(ask(url, args.name, args.wait))
    code = verdict(replies, host, liveness=args.liveness)
    mine = own_replies(replies or [], host)
    state = "bus unreachable" if replies is None else f"{len(mine)} answer(s) from {host}"
    print(f"{args.name}: {'ok' if code == READY else 'failing'} ({state})")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.worker_health")
    _arguments(parser)
    return run_probe(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
