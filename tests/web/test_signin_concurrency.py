"""Parallel guesses cannot outrun the limit: 40 wrong passwords at once, half through a server
thread in this process and half through a second web process, on SQLite and on MariaDB; at most
5 passwords may be checked (each checked wrong password leaves one "wrong password" audit row)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from waitress.server import create_server

from common.appdb import AppDB
from common.migrate import upgrade
from common.models.access import AuditLog
from common.nats_server import free_port
from tests.factories.sites import build_site
from tests.support import REPO, TEST_SECRET, make_settings, wait_for
from web.app import create_app

ATTEMPTS = 40
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def two_web_processes(db_url: str, tmp_path: Path, nats_server):  # type: ignore[no-untyped-def]
    """Base URLs of the same site served by a thread here and by a second process."""
    site = build_site(f"sqlite:///{tmp_path / 'moodle.db'}")
    upgrade(db_url)
    env = {"MANIREPORTS_INSTANCE": str(tmp_path / "instance"), "DATABASE_URL": db_url,
           "MOODLE_DATABASE_URL": site.url, "NATS_URL": nats_server.url,
           "SECRET_KEY": TEST_SECRET}  # fmt: skip
    app = create_app(make_settings(tmp_path, **env))
    here = create_server(app, host="127.0.0.1", port=free_port(), threads=20)
    threading.Thread(target=here.run, daemon=True).start()
    port = free_port()
    serve = (
        "import waitress; from web.app import create_app; "
        f"waitress.serve(create_app(), host='127.0.0.1', port={port}, threads=20)"
    )
    process_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env}
    other = subprocess.Popen([sys.executable, "-c", serve], cwd=REPO, env=process_env)
    bases = [f"http://127.0.0.1:{here.effective_port}", f"http://127.0.0.1:{port}"]

    def up() -> bool:
        try:
            return requests.get(f"{bases[1]}/login", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, timeout_s=30, message="the second web process")
        yield bases
    finally:
        other.terminate()
        other.wait(timeout=30)
        here.close()
        app.extensions["manireports"].close()


def test_forty_parallel_guesses_check_at_most_five_passwords(two_web_processes, db_url):
    bases = two_web_processes
    ready = threading.Barrier(ATTEMPTS)

    def guess(n: int) -> int:
        browser = requests.Session()
        base = bases[n % 2]
        page = browser.get(f"{base}/login", timeout=30).text
        token = CSRF.search(page).group(1)  # type: ignore[union-attr]
        ready.wait(timeout=60)  # every request leaves at once
        form = {"username": "ana", "password": f"wrong-{n}", "csrf_token": token}
        return browser.post(f"{base}/login", data=form, timeout=120).status_code

    with ThreadPoolExecutor(ATTEMPTS) as pool:
        statuses = Counter(pool.map(guess, range(ATTEMPTS)))
    assert statuses == {401: ATTEMPTS}
    appdb = AppDB(db_url)
    try:
        with appdb.transaction() as db:
            rows = list(db.scalars(select(AuditLog).where(AuditLog.action == "login")))
    finally:
        appdb.dispose()
    checked = [row for row in rows if "wrong password" in (row.details or "")]
    throttled = [row for row in rows if row.outcome == "denied"]
    assert len(checked) == 5  # the limit, exactly: never more, and reached
    assert len(throttled) == ATTEMPTS - 5
