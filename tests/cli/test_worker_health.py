"""`manireports worker-health`: the probe a pod runs, against real worker processes and NATS."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from cli.worker_health import NOT_READY, READY, own_replies, verdict
from common.nats_server import EmbeddedNatsServer
from tests.fakes.smtp_sink import free_port
from tests.support import REPO, service_env, wait_for

HOST = socket.gethostname()


@pytest.fixture
def fresh_nats(tmp_path):  # type: ignore[no-untyped-def]
    server = EmbeddedNatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


def probe(env: dict[str, str], *args: str, module: bool = True) -> subprocess.CompletedProcess:
    command = (
        [sys.executable, "-m", "cli.worker_health", *args]
        if module
        else [sys.executable, "-m", "cli.main", "worker-health", *args]
    )
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_ready_and_alive_while_the_worker_runs_not_ready_once_it_is_gone(
    tmp_path, fresh_nats, spawn_service
):
    env = service_env(tmp_path, fresh_nats.url)
    worker = spawn_service("sync", env)
    wait_for(lambda: probe(env, "sync").returncode == READY, timeout_s=30, message="sync ready")
    assert probe(env, "sync", "--liveness").returncode == READY
    assert probe(env, "sync", module=False).returncode == READY  # the subcommand, too
    # Another service's name: nothing of it runs here.
    absent = probe(env, "mailer")
    assert absent.returncode == NOT_READY and "0 answer(s)" in absent.stdout
    assert worker.terminate() == 0
    assert probe(env, "sync").returncode == NOT_READY
    assert probe(env, "sync", "--liveness").returncode == NOT_READY


def test_an_unreachable_bus_fails_readiness_but_not_liveness(tmp_path):
    env = service_env(tmp_path, f"nats://127.0.0.1:{free_port()}")
    down = probe(env, "mailer")
    assert down.returncode == NOT_READY and "bus unreachable" in down.stdout
    assert probe(env, "mailer", "--liveness").returncode == READY
    unset = {k: v for k, v in env.items() if k != "NATS_URL"}
    assert probe(unset, "mailer").returncode == NOT_READY


def test_only_this_hosts_replicas_count():
    elsewhere = {"instance": "mailer-7d9f-abcde:1", "healthy": True}
    here_unhealthy = {"instance": f"{HOST}:42", "healthy": False}
    assert own_replies([elsewhere, here_unhealthy], HOST) == [here_unhealthy]
    # A healthy replica in another pod does not make this one ready...
    assert verdict([elsewhere], HOST, liveness=False) == NOT_READY
    # ...and one answering here, draining, is alive but not ready.
    assert verdict([elsewhere, here_unhealthy], HOST, liveness=False) == NOT_READY
    assert verdict([here_unhealthy], HOST, liveness=True) == READY
    assert verdict([{**here_unhealthy, "healthy": True}], HOST, liveness=False) == READY
    # A host whose name has a colon-free prefix of ours is not ours.
    assert own_replies([{"instance": f"{HOST}x:1", "healthy": True}], HOST) == []
