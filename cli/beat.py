"""`manireports beat`: the lean heartbeat endpoint (web/tracking/beat_app.py) under uvicorn.

For sites whose learners send more beats than the Flask web tier should answer: the reverse
proxy routes `/tracking/beat` here (README, time tracking) and everything else to
`manireports web`. Small sites need none of this; the Flask route answers beats as before.
"""

from __future__ import annotations

import argparse

from common.runtime import configure_logging
from common.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    beat = subparsers.add_parser(
        "beat", help="serve POST /tracking/beat alone, lean (uvicorn; BEAT_HOST:BEAT_PORT)"
    )
    beat.add_argument(
        "--workers", type=int, default=1, help="processes (each its own cache and bus link)"
    )
    beat.set_defaults(func=run_beat)


def run_beat(args: argparse.Namespace) -> int:
    import uvicorn

    from web.tracking.beat_app import UVICORN_OPTIONS

    configure_logging()
    settings = load_settings()  # fails here, not in a worker, when the settings are wrong
    uvicorn.run(
        "web.tracking.beat_app:from_env",
        factory=True,
        host=settings.beat_host,
        port=settings.beat_port,
        workers=args.workers,
        log_config=None,  # the process's logging (configure_logging), not uvicorn's own
        **UVICORN_OPTIONS,
    )
    return 0
