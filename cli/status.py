"""`manireports status`: each service's health, asked over the bus."""

from __future__ import annotations

import argparse
import asyncio
import json

from cli.worker import SERVICES
from common.bus import HEALTH_ALL, Bus
from common.settings import SettingsError, load_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    status = subparsers.add_parser("status", help="health of every service")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--wait", type=float, default=1.0, help="seconds to collect replies")
    status.set_defaults(func=run_status)


async def collect_health(nats_url: str, wait_s: float) -> list[dict]:
    bus = await Bus.connect(nats_url, name="manireports-status")
    try:
        return await bus.gather(HEALTH_ALL, {}, wait_s=wait_s)
    finally:
        await bus.close()


def run_status(args: argparse.Namespace) -> int:
    settings = load_settings()
    nats_url = settings.nats_url or _embedded_url(settings)
    try:
        replies = asyncio.run(collect_health(nats_url, args.wait))
    except OSError as exc:
        raise SettingsError(f"NATS_URL: cannot reach {nats_url}: {exc}") from None
    by_service = {name: [r for r in replies if r.get("service") == name] for name in SERVICES}
    if args.json:
        print(json.dumps(by_service, indent=2))
    else:
        for name, instances in by_service.items():
            healthy = sum(1 for r in instances if r.get("healthy"))
            state = "healthy" if healthy else "DOWN"
            print(f"{name:<11} {state:<8} {healthy}/{len(instances)} replicas healthy")
    all_up = all(any(r.get("healthy") for r in rs) for rs in by_service.values())
    return 0 if all_up else 1


def _embedded_url(settings) -> str:  # type: ignore[no-untyped-def]
    """`manireports up` writes the embedded server's URL to the instance folder."""
    path = settings.instance_dir / "nats.url"
    if not path.exists():
        raise SettingsError(
            "NATS_URL: unset and no embedded nats-server is running (`manireports up`)"
        )
    return path.read_text().strip()
