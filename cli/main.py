"""`manireports`: the one console script. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys

from common.settings import SettingsError


def build_parser() -> argparse.ArgumentParser:
    from cli import beat, db, stack, status, worker

    parser = argparse.ArgumentParser(
        prog="manireports", description="Learning analytics and LMS operations beside Moodle/IOMAD"
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (stack, beat, worker, db, status):
        module.register(subparsers)
    _register_optional(subparsers)
    return parser


def _register_optional(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Subcommands whose modules arrive with later areas."""
    import importlib

    for name in (
        "demo",
        "report",
        "sql",
        "schedule",
        "privacy",
        "sync",
        "identity",
        "unenroll",
        "classroom",
        "worker_health",
    ):
        try:
            module = importlib.import_module(f"cli.{name}")
        except ModuleNotFoundError:
            continue
        module.register(subparsers)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"manireports: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
