"""Benchmark: the report concurrency limit holds across replicas under a burst of requests.

Seeds a small demo site on SQLite, starts a nats-server, and serves the real web tier twice
(two app instances, each with its own bus connection and its own waitress server: two
replicas sharing NATS). Every report execution is instrumented — a counter of runs in
progress around `page_json`, with a slow query simulated by a sleep inside it — and 50
clients at once ask GET /reports/course_completion/data, half of each replica, each retrying
on 429 after Retry-After with its X-Run-Ticket as the report page's script does.

Printed: the most runs ever in progress (must be exactly REPORT_MAX_CONCURRENT, never more),
the burst's wall time and throughput, the same burst against two replicas without a limit
(REPORT_MAX_CONCURRENT=0) in the same run as the baseline, their ratio, the 429s answered and
the limit's overhead on an idle request (one slot taken and given back). Exits 1 on a miss.

    python bench/run_limit.py                 # N=4, 50 clients, 250 ms per run
    python bench/run_limit.py --limit 2 --clients 80 --run-ms 100

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from dashboard import signed_in  # noqa: E402
from waitress.server import create_server  # noqa: E402

import web.reports.routes as report_routes  # noqa: E402
from common.migrate import upgrade  # noqa: E402
from common.moodle.demo import seed_site  # noqa: E402
from common.nats_server import EmbeddedNatsServer, free_port  # noqa: E402
from common.run_limit import KvRunLimiter  # noqa: E402
from common.settings import load_settings  # noqa: E402
from web.app import create_app  # noqa: E402
from web.runs.execution import EXTENSION  # noqa: E402

DATA = "/reports/course_completion/data"


class Instrument:
    """Runs in progress across both replicas (they share this process) and the peak."""

    def __init__(self, run_s: float):
        self.run_s = run_s
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.runs = 0
        self.busy_s = 0.0  # time spent inside runs, summed

    def wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def instrumented(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.running += 1
                self.runs += 1
                self.peak = max(self.peak, self.running)
            started = time.perf_counter()
            try:
                time.sleep(self.run_s)  # the slow query
                return original(*args, **kwargs)
            finally:
                with self.lock:
                    self.running -= 1
                    self.busy_s += time.perf_counter() - started

        return instrumented

    def reset(self) -> None:
        self.running = self.peak = self.runs = 0
        self.busy_s = 0.0


def serve(settings: Any, threads: int) -> tuple[str, Any]:
    app = create_app(settings)
    port = free_port()
    # Daemon thread: it ends with the process (closing waitress from here races its loop).
    server = create_server(app, host="127.0.0.1", port=port, threads=threads)
    threading.Thread(target=server.run, daemon=True).start()
    return f"http://127.0.0.1:{port}", app


def one_client(session: requests.Session, url: str, deadline: float) -> tuple[int, float]:
    """Ask until answered (429: wait Retry-After, send the ticket back); (429s, seconds)."""
    started, busy, headers = time.perf_counter(), 0, {}
    while time.monotonic() < deadline:
        response = session.get(url, headers=headers, timeout=60)
        if response.status_code == 200:
            return busy, time.perf_counter() - started
        if response.status_code != 429:
            raise RuntimeError(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
        busy += 1
        headers = {"X-Run-Ticket": response.headers.get("X-Run-Ticket", "")}
        time.sleep(float(response.headers.get("Retry-After", "1")))
    raise RuntimeError(f"{url}: no answer before the deadline")


def burst(bases: list[str], cookie: Any, clients: int) -> dict[str, Any]:
    sessions = []
    for i in range(clients):
        session = requests.Session()
        session.cookies.update(cookie)
        sessions.append((session, bases[i % len(bases)] + DATA))
    deadline = time.monotonic() + 300
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda s: one_client(s[0], s[1], deadline), sessions))
    wall = time.perf_counter() - started
    return {
        "wall_s": round(wall, 2),
        "runs_per_s": round(clients / wall, 2),
        "answered_429": sum(b for b, _ in results),
        "client_p50_s": round(statistics.median(t for _, t in results), 2),
        "client_max_s": round(max(t for _, t in results), 2),
    }


def idle_overhead_ms(session: requests.Session, limited: str, free: str, n: int) -> float:
    """Median extra time of one idle request through the limit (slot taken and given back):
    requests to a limited and an unlimited replica, alternated, paired."""

    def timed(base: str) -> float:
        started = time.perf_counter()
        assert session.get(base + DATA, timeout=60).status_code == 200
        return time.perf_counter() - started

    for _ in range(3):  # warm-up
        timed(limited), timed(free)
    return round(statistics.median(timed(limited) - timed(free) for _ in range(n)) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--run-ms", type=int, default=250)
    args = parser.parse_args()
    instrument = Instrument(args.run_ms / 1000)
    report_routes.page_json = instrument.wrap(report_routes.page_json)
    with tempfile.TemporaryDirectory(prefix="manireports-bench-") as scratch:
        url = f"sqlite:///{scratch}/moodle.db"
        seed_site(url, users=200, courses=10, companies=3, days=30, target_log_rows=5_000)
        nats = EmbeddedNatsServer(Path(scratch) / "nats").start()
        try:
            env = {"MANIREPORTS_INSTANCE": str(Path(scratch) / "instance"),
                   "MOODLE_DATABASE_URL": url, "NATS_URL": nats.url}  # fmt: skip
            limited = load_settings({**env, "REPORT_MAX_CONCURRENT": str(args.limit)})
            free = load_settings({**env, "REPORT_MAX_CONCURRENT": "0"})
            upgrade(limited.database_url)
            threads = args.clients  # every request in flight at once: the limit does the rest
            replicas = [serve(limited, threads) for _ in range(2)]
            baseline = [serve(free, threads) for _ in range(2)]
            for _, app in replicas:
                assert isinstance(app.extensions[EXTENSION], KvRunLimiter), "not the NATS limit"
            admin = signed_in(replicas[0][0], "admin")
            instrument.run_s = 0
            overhead = idle_overhead_ms(admin, replicas[1][0], baseline[1][0], 40)
            instrument.run_s = args.run_ms / 1000
            instrument.reset()
            base_figures = burst([b for b, _ in baseline], admin.cookies, args.clients)
            base_peak = instrument.peak
            instrument.reset()
            limited_figures = burst([b for b, _ in replicas], admin.cookies, args.clients)
            # At best the N slots are never idle: N runs of the mean length at a time.
            mean_run_s = instrument.busy_s / max(instrument.runs, 1)
            best_runs_per_s = args.limit / mean_run_s
            fallbacks = sum(app.extensions[EXTENSION].fallback._next_ticket for _, app in replicas)
            figures = {
                "bench": "run_limit",
                "limit": args.limit,
                "replicas": 2,
                "clients": args.clients,
                "run_ms": args.run_ms,
                "max_running": instrument.peak,
                "runs": instrument.runs,
                **{f"limited_{k}": v for k, v in limited_figures.items()},
                "baseline_max_running": base_peak,
                **{f"baseline_{k}": v for k, v in base_figures.items()},
                "throughput_ratio": round(
                    limited_figures["runs_per_s"] / base_figures["runs_per_s"], 3
                ),
                "mean_run_ms": round(mean_run_s * 1000, 1),
                "slot_use": round(limited_figures["runs_per_s"] / best_runs_per_s, 3),
                "idle_overhead_ms": overhead,
                "local_fallbacks": fallbacks,
            }
            for _, app in replicas + baseline:
                app.extensions["manireports"].close()
        finally:
            nats.stop()
    print(f"most runs at once: {figures['max_running']} (limit {args.limit}) across 2 replicas; "
          f"without a limit: {figures['baseline_max_running']}")  # fmt: skip
    print(f"{args.clients} requests: {figures['limited_wall_s']} s limited "
          f"({figures['limited_runs_per_s']} runs/s, {figures['limited_answered_429']} × 429) vs "
          f"{figures['baseline_wall_s']} s unlimited ({figures['baseline_runs_per_s']} runs/s): "
          f"ratio {figures['throughput_ratio']}")  # fmt: skip
    use, mean_ms = figures["slot_use"], figures["mean_run_ms"]
    print(f"slots busy {use:.0%} of the burst (runs of {mean_ms} ms)")
    print(f"idle request overhead of the limit: {overhead} ms")
    print(json.dumps(figures))
    missed = []
    if figures["max_running"] != args.limit:
        missed.append(f"max running {figures['max_running']} != limit {args.limit}")
    if figures["runs"] != args.clients:
        missed.append(f"{figures['runs']} runs for {args.clients} requests")
    if fallbacks:
        missed.append(f"{fallbacks} runs fell back to the per-process limit")
    if missed:
        print("MISS: " + "; ".join(missed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
