"""`manireports up --cluster 3`: a local 3-node JetStream cluster under the whole stack, whose
streams get three replicas; and what it refuses."""

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from cli.worker import SERVICES
from common.bus import Bus
from common.nats_server import NatsServerError, free_port, nats_server_binary
from tests.cli.test_up import healthz, status
from tests.support import REPO, TEST_SECRET, wait_for

METRICS_TOKEN = "up-cluster-metrics-token"


def scrape(url: str) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 200
        return response.read().decode()


def up_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    unset = ("NATS_URL", "NATS_REPLICAS", "DATABASE_URL", "MOODLE_DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(MANIREPORTS_INSTANCE=str(tmp_path / "instance"), SECRET_KEY=TEST_SECRET, **extra)
    return env


@pytest.mark.parametrize(
    ("argv", "extra", "message"),
    [
        (["--cluster", "1"], {}, "--cluster: 1 is outside 2..5"),
        (["--cluster", "6"], {}, "--cluster: 6 is outside 2..5"),
        (["--cluster", "3"], {"NATS_URL": "nats://127.0.0.1:4222"}, "unset NATS_URL"),
    ],
)
def test_up_refuses_a_cluster_it_cannot_start(tmp_path, argv, extra, message):
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "up", *argv], env=up_env(tmp_path, **extra),
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr


def test_up_cluster_3_runs_the_stack_on_three_routed_servers(tmp_path):
    try:
        nats_server_binary()
    except NatsServerError as exc:
        pytest.skip(str(exc))
    web_port, first_nats, metrics_base = free_port(), free_port(), free_port()
    env = up_env(tmp_path, WEB_PORT=str(web_port), EMBEDDED_NATS_PORT=str(first_nats),
                 METRICS_PORT=str(metrics_base), METRICS_TOKEN=METRICS_TOKEN)  # fmt: skip
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "up", "--cluster", "3"],
                            env=env, cwd=REPO, stdout=log, stderr=log)  # fmt: skip
    try:
        url_file = tmp_path / "instance" / "nats.url"
        wait_for(lambda: healthz(web_port), timeout_s=90, message="/healthz 200")
        by_service = wait_for(lambda: status(env)[1] if status(env)[0] == 0 else None,
                              timeout_s=60, message="every service healthy")  # fmt: skip
        assert set(by_service) == {"aggregator", "scheduler", "mailer", "sync"}
        servers = url_file.read_text().split(",")
        assert servers == [f"nats://127.0.0.1:{first_nats + i}" for i in range(3)]
        for n in (1, 2, 3):
            assert (tmp_path / "instance" / "nats-cluster" / f"n{n}" / "jetstream").is_dir()

        async def replicas() -> dict[str, int]:
            bus = await Bus.connect(url_file.read_text(), "test")
            try:
                infos = await bus.js.streams_info()
                return {i.config.name: i.config.num_replicas for i in infos}  # type: ignore[misc]
            finally:
                await bus.close()

        # The services created every stream and bucket with NATS_REPLICAS=3.
        assert set(asyncio.run(replicas()).values()) == {3}

        # /metrics on the web tier and on each service, on METRICS_PORT+1, +2, ...
        web_metrics = scrape(f"http://127.0.0.1:{web_port}/metrics")
        assert 'manireports_queue_depth{stream="COMMANDS"}' in web_metrics
        for offset, name in enumerate(SERVICES, start=1):
            text = scrape(f"http://127.0.0.1:{metrics_base + offset}/metrics")
            assert 'manireports_queue_depth{stream="MAIL"}' in text, name

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, (tmp_path / "up.log").read_text()
        for port in (first_nats, first_nats + 1, first_nats + 2):
            leftover = subprocess.run(["pgrep", "-f", f"nats-server .*-p {port}"],
                                      capture_output=True)  # fmt: skip
            assert leftover.returncode == 1, f"nats-server on {port} left running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
