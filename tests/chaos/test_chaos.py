"""The chaos run (issue 15, bench/chaos.py --quick) as a test: processes SIGKILLed at random
under a combined load on a 3-node NATS cluster, and the invariants that must hold after.

Skipped unless MANIREPORTS_CHAOS=1: it starts 3 nats-servers and 9 service processes and
runs for about three minutes on 2 cores, more than CI's 90-minute budget can spare for one
test. With MANIREPORTS_TEST_MARIADB_URL set, the app DB is on that MariaDB server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.environ.get("MANIREPORTS_CHAOS") != "1",
    reason="the chaos run takes ~3 min and 12 processes on 2 cores (CI's 90-minute budget): "
    "set MANIREPORTS_CHAOS=1 to run it",
)


@pytest.fixture(scope="module")
def figures() -> dict:
    command = [sys.executable, str(REPO / "bench" / "chaos.py"), "--quick"]
    mariadb = os.environ.get("MANIREPORTS_TEST_MARIADB_URL")
    if mariadb:
        command += ["--mariadb", mariadb]
    # On a timeout, run() sends SIGTERM, which chaos.py turns into a clean stop of everything.
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_all_five_kinds_of_process_were_killed_and_restarted(figures):
    killed = sorted(kill["what"] for kill in figures["kills"])
    assert killed == ["aggregator", "leading scheduler", "mailer", "nats-server", "web"]
    assert figures["phases"]["chaos"]["job_finished"]


def test_no_recipient_is_lost_and_duplicates_stay_within_the_killed_mailers_in_flight(figures):
    assert figures["lost"] == 0
    assert figures["duplicates"] <= figures["duplicates_bound"]
    for phase in ("free", "chaos"):
        mail = figures["phases"][phase]["mail"]
        assert mail["dead_lettered_without_reason"] == 0
        assert (
            mail["sent_once"] + mail["dead_lettered"] + mail["recipients_duplicated"]
            == (mail["recipients"])
        )


def test_no_sending_claim_is_left(figures):
    assert figures["stuck_sending_claims"] == 0


def test_every_acknowledged_beat_is_in_the_daily_seconds(figures):
    assert figures["beats_acked_not_reflected"] == 0
    assert figures["daily_seconds_exact"]
    assert figures["phases"]["chaos"]["beats"]["acked"] > 0


def test_every_scheduled_slot_fired_exactly_once(figures):
    assert figures["slots_fired_exactly_once"] == figures["slots_expected"] > 0
    assert figures["slot_duplicates"] == 0


def test_the_shared_quota_held_within_5_percent_over_any_10_s(figures):
    assert figures["max_quota_excess_pct"] <= 5.0
