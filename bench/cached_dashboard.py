"""Benchmark: cached analytics dashboards at 10,000 users, against the bare web stack.

Seeds a demo site, runs the aggregator's jobs that fill the dashboard cache (log estimate,
engagement, cache refresh) as the scheduler would, serves the real web tier with waitress on
loopback and times GET /analytics/ (the cached overview) as a site admin and as a company
manager. In the same run it times the baseline: the same stack serving an authenticated page
that reads no figures (/dashboards/). The ratio is cached p95 / baseline p95.

    python bench/cached_dashboard.py --quick
    python bench/cached_dashboard.py            # 10,000 users

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests
from waitress.server import create_server

from common.appdb import AppDB
from common.migrate import upgrade
from common.moodle import MoodleSource
from common.moodle.demo import seed_site
from common.nats_server import free_port
from common.settings import load_settings
from services.aggregator.jobs import Jobs
from web.app import create_app

QUICK = {"users": 2_000, "courses": 40, "companies": 10, "log_rows": 200_000, "requests": 100}
FULL = {"users": 10_000, "courses": 200, "companies": 50, "log_rows": 1_000_000, "requests": 300}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(round(q * (len(ordered) - 1))), len(ordered) - 1)]


def signed_in(base: str, username: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    form = {"username": username, "password": "Demo-2026!", "csrf_token": token}
    assert session.post(f"{base}/login", data=form, allow_redirects=False).status_code == 302
    return session


def timings(session: requests.Session, url: str, n: int, must_contain: str) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = session.get(url)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200 and must_contain in response.text, response.text[:300]
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="manireports-bench-") as scratch:
        url = f"sqlite:///{scratch}/moodle.db"
        print(f"seeding {size['users']} users into {url}", flush=True)
        summary = seed_site(url, users=size["users"], courses=size["courses"],
                            companies=size["companies"], days=90,
                            target_log_rows=size["log_rows"])  # fmt: skip
        settings = load_settings({"MANIREPORTS_INSTANCE": str(Path(scratch) / "instance"),
                                  "MOODLE_DATABASE_URL": url})  # fmt: skip
        upgrade(settings.database_url)
        appdb, source = AppDB(settings.database_url), MoodleSource(url)
        jobs = Jobs(settings, appdb, source)
        started = time.perf_counter()
        jobs.estimate_time()
        jobs.engagement()
        jobs.refresh_caches()
        fill_s = time.perf_counter() - started
        print(f"aggregator filled the cache in {fill_s:.1f} s", flush=True)
        app = create_app(settings)
        port = free_port()
        # Daemon thread: it ends with the process (closing waitress from here races its loop).
        server = create_server(app, host="127.0.0.1", port=port, threads=4)
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        manager = next(x.username for x in summary.logins if x.role == "companymanager")
        admin, mgr = signed_in(base, "admin"), signed_in(base, manager)
        n = size["requests"]
        timings(admin, f"{base}/analytics/", 5, "Figures as of")  # warm-up
        cached_admin = timings(admin, f"{base}/analytics/", n, "Figures as of")
        cached_mgr = timings(mgr, f"{base}/analytics/", n, "Figures as of")
        bare = timings(admin, f"{base}/dashboards/", n, "Dashboards")
        app.extensions["manireports"].close()
        appdb.dispose()
        source.dispose()
    figures = {
        "bench": "cached_dashboard",
        "users": size["users"],
        "requests": n,
        "cache_fill_s": round(fill_s, 1),
        "admin_p50_ms": round(statistics.median(cached_admin) * 1000, 1),
        "admin_p95_ms": round(percentile(cached_admin, 0.95) * 1000, 1),
        "manager_p95_ms": round(percentile(cached_mgr, 0.95) * 1000, 1),
        "baseline_bare_page_p95_ms": round(percentile(bare, 0.95) * 1000, 1),
    }
    figures["ratio"] = round(figures["admin_p95_ms"] / figures["baseline_bare_page_p95_ms"], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
