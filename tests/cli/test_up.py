"""`manireports up` on the embedded defaults: six processes, health, restarts, clean stop."""

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from common.nats_server import free_port
from tests.support import REPO, TEST_SECRET, wait_for


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def status(env):
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "status", "--json", "--wait", "0.7"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    shown = json.loads(result.stdout) if result.stdout else {"services": {}}
    return result.returncode, {name: s["replies"] for name, s in shown["services"].items()}


def pids_of(replies):
    return {int(r["instance"].rsplit(":", 1)[1]) for r in replies}


@pytest.fixture
def stack(tmp_path):
    web_port, nats_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "NATS_URL"}
    env.update(
        MANIREPORTS_INSTANCE=str(tmp_path / "instance"),
        WEB_PORT=str(web_port),
        EMBEDDED_NATS_PORT=str(nats_port),
        SECRET_KEY=TEST_SECRET,
    )
    env.pop("DATABASE_URL", None)
    env.pop("MOODLE_DATABASE_URL", None)
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up"], env=env, cwd=REPO, stdout=log, stderr=log
    )
    yield proc, env, web_port, nats_port, tmp_path / "up.log"
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def test_up_runs_supervises_and_stops_the_whole_stack(stack):
    proc, env, web_port, nats_port, log_path = stack
    wait_for(lambda: healthz(web_port), timeout_s=90, message="/healthz 200")

    def all_healthy():
        code, by_service = status(env)
        return by_service if code == 0 else None

    by_service = wait_for(all_healthy, timeout_s=60, message="every service healthy")
    assert set(by_service) == {"aggregator", "scheduler", "mailer", "sync"}

    # A crashed child is restarted by the supervisor.
    old_pid = pids_of(by_service["aggregator"]).pop()
    os.kill(old_pid, signal.SIGKILL)

    def aggregator_replaced():
        code, now = status(env)
        return code == 0 and pids_of(now["aggregator"]) not in ({old_pid}, set())

    wait_for(aggregator_replaced, timeout_s=60, message="aggregator restarted")

    # The embedded nats-server is restarted too, and the services reconnect to it.
    nats_pid = int(
        subprocess.check_output(["pgrep", "-f", f"nats-server .*-p {nats_port}"]).split()[0]
    )
    os.kill(nats_pid, signal.SIGKILL)
    wait_for(lambda: healthz(web_port) and status(env)[0] == 0, timeout_s=45,
             message="stack healthy after nats-server restart")  # fmt: skip

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0, log_path.read_text()
    leftover = subprocess.run(["pgrep", "-f", f"nats-server .*-p {nats_port}"], capture_output=True)
    assert leftover.returncode == 1, "nats-server left running"
    assert not healthz(web_port)
