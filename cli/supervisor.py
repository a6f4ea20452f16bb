"""Keeps a group of child processes running: restarts a crashed child, stops all together."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start_at: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL)  # noqa: S603
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    def __init__(self) -> None:
        self.children: list[Child] = []
        self._stop = False

    def add(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child(name, argv, env)
        self.children.append(child)
        return child

    def request_stop(self, *_: object) -> None:
        self._stop = True

    def run(self, on_tick: Callable[[], None] | None = None, poll_s: float = 0.5) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        for child in self.children:
            child.start()
        try:
            while not self._stop:
                if on_tick:
                    on_tick()
                self._restart_crashed()
                time.sleep(poll_s)
        finally:
            self.stop_all()

    def _restart_crashed(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.alive():
                continue
            if child.next_start_at == 0.0:
                code = child.process.returncode if child.process else None
                # A child that ran a while before dying starts over with a short delay.
                if now - child.started_at > 60:
                    child.restarts = 0
                delay = min(2**child.restarts * 0.5, MAX_BACKOFF_S)
                child.next_start_at = now + delay
                log.warning("%s exited with %s; restarting in %.1fs", child.name, code, delay)
            elif now >= child.next_start_at:
                child.restarts += 1
                child.next_start_at = 0.0
                child.start()

    def stop_all(self, timeout_s: float = 25.0) -> None:
        for child in self.children:
            if child.alive():
                child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                child.process.kill()
                child.process.wait()


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    return env
