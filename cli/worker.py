"""`manireports worker NAME`: run one service process."""

from __future__ import annotations

import argparse

SERVICES = ("aggregator", "scheduler", "mailer", "sync")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = subparsers.add_parser("worker", help="run one service")
    worker.add_argument("name", choices=SERVICES)
    worker.set_defaults(func=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    import importlib

    from common.runtime import run_service

    module = importlib.import_module(f"services.{args.name}.worker")
    factory = getattr(module, f"{args.name.capitalize()}Worker")
    return run_service(factory)
