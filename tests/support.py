"""Helpers for tests: settings for a temp instance, service processes, polling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from common.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-key-" + "x" * 32


def make_settings(tmp_path: Path, **env: str) -> Settings:
    base = {
        "MANIREPORTS_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "MOODLE_DATABASE_URL": f"sqlite:///{tmp_path / 'moodle.db'}",
        "SECRET_KEY": TEST_SECRET,
    }
    base.update(env)
    return load_settings(base)


def service_env(tmp_path: Path, nats_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MANIREPORTS_INSTANCE": str(tmp_path / "instance"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
            "MOODLE_DATABASE_URL": f"sqlite:///{tmp_path / 'moodle.db'}",
            "NATS_URL": nats_url,
            "SECRET_KEY": TEST_SECRET,
        }
    )
    env.update(extra)
    return env


class ServiceProcess:
    """A service started as its own process, as `manireports up` would."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env=env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def terminate(self, timeout_s: float = 30) -> int:
        self.process.terminate()
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(predicate, timeout_s: float = 20.0, interval_s: float = 0.1, message: str = ""):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {message or predicate}")
