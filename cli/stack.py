"""`manireports up` (the whole stack, supervised) and `manireports web` (the web tier alone)."""

from __future__ import annotations

import argparse
import logging

from cli.supervisor import Supervisor, child_env, python_argv
from cli.worker import SERVICES
from common.db import require_database
from common.migrate import upgrade
from common.nats_server import EmbeddedNatsCluster, EmbeddedNatsServer
from common.runtime import configure_logging
from common.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)

# A local cluster, like NATS_REPLICAS, holds at most 5 copies.
MAX_CLUSTER = 5


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    up = subparsers.add_parser("up", help="start nats-server (if needed), web and all services")
    up.add_argument(
        "--cluster",
        type=int,
        default=0,
        metavar="N",
        help="start a local JetStream cluster of N (2..5) nats-servers instead of one, "
        "with NATS_REPLICAS=N (for trying a clustered bus on one machine)",
    )
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


def run_up(args: argparse.Namespace) -> int:
    configure_logging()
    settings = load_settings()
    cluster_size = args.cluster
    if cluster_size and not 2 <= cluster_size <= MAX_CLUSTER:
        raise SettingsError(f"--cluster: {cluster_size} is outside 2..{MAX_CLUSTER}")
    if cluster_size and not settings.embedded_nats:
        raise SettingsError("--cluster: starts its own nats-servers; unset NATS_URL")
    if settings.metrics_port + len(SERVICES) > 65535:
        raise SettingsError(f"METRICS_PORT: `up` gives its services the ports after it; "
                            f"use one below {65535 - len(SERVICES)}")  # fmt: skip
    require_database("DATABASE_URL", settings.database_url)
    upgrade(settings.database_url)
    nats: EmbeddedNatsServer | EmbeddedNatsCluster | None = None
    if cluster_size:
        nats = _start_embedded_cluster(settings, cluster_size)
    elif settings.embedded_nats:
        nats = _start_embedded_nats(settings)
    nats_url = nats.url if nats else settings.nats_url
    assert nats_url is not None
    replicas = cluster_size or settings.nats_replicas
    env = child_env(NATS_URL=nats_url, NATS_REPLICAS=str(replicas),
                    MANIREPORTS_INSTANCE=str(settings.instance_dir))  # fmt: skip
    supervisor = Supervisor()
    supervisor.add("web", python_argv("-m", "cli.main", "web"), env)
    for offset, name in enumerate(SERVICES, start=1):
        # One machine, one port each: METRICS_PORT+1, +2, ... (the web tier has /metrics).
        port = (
            {"METRICS_PORT": str(settings.metrics_port + offset)} if settings.metrics_port else {}
        )
        supervisor.add(name, python_argv("-m", f"services.{name}"), {**env, **port})

    def keep_nats_alive() -> None:
        if isinstance(nats, EmbeddedNatsCluster):
            for server in nats.restart_dead():
                log.warning("nats-server on port %d had exited; restarted it", server.port)
        elif nats and not nats.alive():
            log.warning("nats-server exited; restarting it")
            nats.start()

    url = f"http://{settings.web_host}:{settings.web_port}/"
    print(f"ManiReports is starting at {url}  (Ctrl-C stops)")
    kind = (
        f" (embedded cluster of {cluster_size}, NATS_REPLICAS={replicas})"
        if cluster_size
        else (" (embedded)" if nats else "")
    )
    print(f"bus: {nats_url}{kind}")
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


def _start_embedded_cluster(settings: Settings, size: int) -> EmbeddedNatsCluster:
    """Client ports from EMBEDDED_NATS_PORT up (4250, 4251, ...), stores in nats-cluster/n1..."""
    cluster = EmbeddedNatsCluster(
        settings.instance_dir / "nats-cluster", size, first_port=settings.embedded_nats_port
    )
    cluster.start()
    (settings.instance_dir / "nats.url").write_text(cluster.url)
    return cluster
