"""`manireports up` (the whole stack, supervised) and `manireports web` (the web tier alone)."""

from __future__ import annotations

import argparse
import logging

from cli.supervisor import Supervisor, child_env, python_argv
from cli.worker import SERVICES
from common.db import require_database
from common.migrate import upgrade
from common.nats_server import EmbeddedNatsServer
from common.runtime import configure_logging
from common.settings import Settings, load_settings

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    up = subparsers.add_parser("up", help="start nats-server (if needed), web and all services")
    up.set_defaults(func=run_up)
    web = subparsers.add_parser("web", help="serve the web tier (waitress)")
    web.add_argument("--threads", type=int, default=8)
    web.set_defaults(func=run_web)


def run_web(args: argparse.Namespace) -> int:
    import waitress

    from web.app import create_app

    configure_logging()
    settings = load_settings()
    app = create_app(settings)
    # Waitress would drop X-Forwarded-* before the app sees them; whether to believe them is
    # the app's decision (TRUSTED_PROXIES, ProxyFix), and without it the app ignores them.
    waitress.serve(app, host=settings.web_host, port=settings.web_port, threads=args.threads,
                   clear_untrusted_proxy_headers=False)  # fmt: skip
    return 0


def run_up(_args: argparse.Namespace) -> int:
    configure_logging()
    settings = load_settings()
    require_database("DATABASE_URL", settings.database_url)
    upgrade(settings.database_url)
    nats = _start_embedded_nats(settings) if settings.embedded_nats else None
    nats_url = nats.url if nats else settings.nats_url
    assert nats_url is not None
    env = child_env(NATS_URL=nats_url, MANIREPORTS_INSTANCE=str(settings.instance_dir))
    supervisor = Supervisor()
    supervisor.add("web", python_argv("-m", "cli.main", "web"), env)
    for name in SERVICES:
        supervisor.add(name, python_argv("-m", f"services.{name}"), env)

    def keep_nats_alive() -> None:
        if nats and not nats.alive():
            log.warning("nats-server exited; restarting it")
            nats.start()

    url = f"http://{settings.web_host}:{settings.web_port}/"
    print(f"ManiReports is starting at {url}  (Ctrl-C stops)")
    print(f"bus: {nats_url}{' (embedded)' if nats else ''}")
    try:
        supervisor.run(on_tick=keep_nats_alive)
    finally:
        if nats:
            nats.stop()
            (settings.instance_dir / "nats.url").unlink(missing_ok=True)
    return 0


def _start_embedded_nats(settings: Settings) -> EmbeddedNatsServer:
    server = EmbeddedNatsServer(settings.instance_dir / "nats", port=settings.embedded_nats_port)
    server.start()
    (settings.instance_dir / "nats.url").write_text(server.url)
    return server
