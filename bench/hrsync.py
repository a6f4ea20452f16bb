"""Benchmark: one HR sync run of N changed employees against the bare HTTP round trips it needs.

The local BambooHR and Moodle REST servers (tests/fakes) run in this process. BambooHR holds N
employees changed in the last hour: 70% new hires (Moodle creates), 28% already in Moodle as
synced users (half with an outdated department: updates; half unchanged) and 2% terminated
(suspensions, under the default 10% limit). Moodle also holds 100 users made by hand.

The project's figure is `manireports sync bamboohr` (batch size 0: everything in one run) as
a process, wall clock, plus the engine's own `duration_s`. The baseline, in the same run:
every request the sync made, read back from the two servers' request logs (the changed feed,
the directory, the employee look-ups, every web-service call with its exact form body),
replayed in a plain loop with requests.Session by a second process against a Moodle server
seeded the same way (so each call gets the same answer), each answer read and its JSON parsed.
`ratio` is project wall / baseline wall (both whole processes); `ratio_in_run` compares the
engine's duration_s with the baseline's loop alone. The goal is ratio ≤ 2.

    python bench/hrsync.py --quick      # 1,000 employees
    python bench/hrsync.py              # 10,000 employees

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

SECRET = "bench-secret-key-" + "x" * 32
QUICK = {"n": 1_000}
FULL = {"n": 10_000}
HAND_MADE = 100


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def kind_of(i: int) -> str:
    """The scenario, deterministic per employee index."""
    slot = i % 50
    if slot == 0:
        return "terminated"  # 2%
    if slot <= 7:
        return "outdated"  # 14%
    if slot <= 14:
        return "unchanged"  # 14%
    return "new"  # 70%


def email_of(i: int) -> str:
    return f"employee{i}@acme.example"


def seed_bamboohr(server: Any, n: int) -> None:
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    for i in range(1, n + 1):
        kind = kind_of(i)
        created = two_hours_ago if kind != "new" else None
        server.add_employee(
            f"First{i}",
            f"Last{i}",
            email_of(i),
            employee_id=str(i),
            department=f"Dept{i % 40}",
            job_title="Staff",
            division="Acme",
            at=created,
        )
        if kind == "terminated":
            server.terminate(str(i))
        elif kind != "new":
            server.change_employee(str(i), jobTitle="Senior staff")  # in the feed, as Updated


def seed_moodle(server: Any, n: int) -> None:
    """The Moodle side before the run; called twice, for the run and for the replay."""
    for h in range(HAND_MADE):
        server.add_user(f"hand{h}", f"hand{h}@other.example", "Hand", f"Made{h}")
    for i in range(1, n + 1):
        kind = kind_of(i)
        if kind == "new":
            continue
        department = f"Dept{i % 40}" if kind != "outdated" else "Old department"
        server.add_user(
            email_of(i),
            email_of(i),
            f"First{i}",
            f"Last{i}",
            auth="oidc",
            idnumber=str(i),
            department=department,
            institution="Acme",
        )


def replay_list(bamboo: Any, moodle: Any) -> list[dict[str, Any]]:
    """Every request the run made, as the servers logged it, BambooHR's first."""
    replay: list[dict[str, Any]] = []
    for r in bamboo.requests:
        headers = {k: v for k, v in r.headers.items() if k in ("Accept", "Authorization")}
        replay.append({"server": "bamboohr", "method": r.method, "path": r.path,
                       "params": r.query, "headers": headers})  # fmt: skip
    for c in moodle.calls:
        replay.append({"server": "moodle", "method": c.http_method,
                       "path": "/webservice/rest/server.php", "form": c.raw})  # fmt: skip
    return replay


def replay(path: str) -> None:
    """The baseline process: the requests in a plain loop, one keep-alive session per server."""
    spec = json.loads(Path(path).read_text())
    sessions = {name: requests.Session() for name in spec["bases"]}
    statuses: Counter[int] = Counter()
    started = time.perf_counter()
    for r in spec["requests"]:
        url = spec["bases"][r["server"]] + r["path"]
        if r["server"] == "bamboohr":
            response = sessions["bamboohr"].get(
                url, params=r["params"], headers=r["headers"], timeout=30
            )
        elif r["method"] == "GET":
            response = sessions["moodle"].get(url, params=r["form"], timeout=30)
        else:
            response = sessions["moodle"].post(url, data=r["form"], timeout=30)
        if response.content.strip():
            response.json()
        statuses[response.status_code] += 1
    loop_s = time.perf_counter() - started
    print(json.dumps({"loop_s": loop_s, "statuses": statuses}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int)
    parser.add_argument("--replay", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay:
        replay(args.replay)
        return
    from common.migrate import upgrade
    from tests.fakes.bamboohr_server import BambooHrServer
    from tests.fakes.moodle_ws_server import MoodleWsServer

    n = args.n or (QUICK if args.quick else FULL)["n"]
    with tempfile.TemporaryDirectory(prefix="manireports-bench-") as scratch:
        app_env = {
            "MANIREPORTS_INSTANCE": str(Path(scratch) / "instance"),
            "DATABASE_URL": f"sqlite:///{scratch}/app.db",
            "MOODLE_DATABASE_URL": f"sqlite:///{scratch}/moodle.db",
            "SECRET_KEY": SECRET,
        }
        upgrade(app_env["DATABASE_URL"])
        bamboo, moodle, moodle_again = (
            BambooHrServer().start(),
            MoodleWsServer().start(),
            MoodleWsServer().start(),
        )
        try:
            say(f"seeding {n} BambooHR employees and their Moodle side")
            seed_bamboohr(bamboo, n)
            seed_moodle(moodle, n)
            seed_moodle(moodle_again, n)
            env = {**os.environ, **app_env, **bamboo.env, **moodle.env,
                   "HR_SYNC_BATCH_SIZE": "0", "HR_SYNC_LOOKBACK_DAYS": "1",
                   "PYTHONPATH": str(REPO)}  # fmt: skip
            cli = Path(sys.executable).parent / "manireports"
            command = [str(cli)] if cli.exists() else [sys.executable, "-m", "cli.main"]
            # The servers' logs grow through the run; frozen objects are not scanned again by
            # this process's collector, so the phase timed second does not pay for the first.
            gc.collect()
            gc.freeze()
            say("project: manireports sync bamboohr")
            started = time.perf_counter()
            done = subprocess.run(
                [*command, "sync", "bamboohr"], env=env, capture_output=True, text=True
            )
            project_wall = time.perf_counter() - started
            if done.returncode != 0:
                sys.exit(f"sync exited {done.returncode}:\n{done.stderr[-2000:]}")
            summary = json.loads(done.stdout.strip().splitlines()[-1])
            expected = {
                "created": sum(kind_of(i) == "new" for i in range(1, n + 1)),
                "updated": sum(kind_of(i) == "outdated" for i in range(1, n + 1)),
                "suspended": sum(kind_of(i) == "terminated" for i in range(1, n + 1)),
                "unchanged": sum(kind_of(i) == "unchanged" for i in range(1, n + 1)),
            }
            got = {key: summary[key] for key in expected}
            if got != expected or summary["errors"]:
                sys.exit(f"the run did not do the work: {got} != {expected}, "
                         f"errors {summary['errors'][:3]}")  # fmt: skip
            requests_list = replay_list(bamboo, moodle)
            run_statuses = Counter(str(r.status) for r in bamboo.requests)
            run_statuses.update(["200"] * len(moodle.calls))
            say(f"baseline: the run's {len(requests_list)} requests in a plain loop")
            spec = {"bases": {"bamboohr": bamboo.base_url, "moodle": moodle_again.base_url},
                    "requests": requests_list}  # fmt: skip
            spec_path = Path(scratch) / "replay.json"
            spec_path.write_text(json.dumps(spec))
            gc.collect()
            gc.freeze()
            started = time.perf_counter()
            base = subprocess.run(
                [sys.executable, __file__, "--replay", str(spec_path)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            baseline_wall = time.perf_counter() - started
            baseline = json.loads(base.stdout.strip().splitlines()[-1])
        finally:
            for server in (bamboo, moodle, moodle_again):
                server.stop()
    # The replay got what the run got: the same statuses, and the same web-service answers
    # (same ids too: the second Moodle was seeded the same way).
    same_answers = [c.response for c in moodle.calls] == [c.response for c in moodle_again.calls]
    figures = {
        "bench": "hrsync",
        "employees": n,
        "requests": len(requests_list),
        "bamboohr_requests": len(bamboo.requests),
        "moodle_calls": dict(Counter(c.wsfunction for c in moodle.calls)),
        "summary": got,
        "project_wall_s": round(project_wall, 2),
        "project_duration_s": summary["duration_s"],
        "baseline_wall_s": round(baseline_wall, 2),
        "baseline_loop_s": round(baseline["loop_s"], 2),
        "replayed_statuses_match": baseline["statuses"] == dict(run_statuses),
        "replayed_answers_identical": same_answers,
        "ratio": round(project_wall / baseline_wall, 2),
        "ratio_in_run": round(summary["duration_s"] / baseline["loop_s"], 2),
    }
    print(
        f"\n{'employees':<34}{n}\n"
        f"{'requests':<34}{figures['requests']}\n"
        f"{'project (manireports sync) wall':<34}{figures['project_wall_s']} s "
        f"(engine duration_s {figures['project_duration_s']})\n"
        f"{'baseline (plain loop) wall':<34}{figures['baseline_wall_s']} s "
        f"(loop {figures['baseline_loop_s']} s)\n"
        f"{'ratio project/baseline':<34}{figures['ratio']} (in run: {figures['ratio_in_run']})\n",
        flush=True,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
