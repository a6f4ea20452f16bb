"""The README's API examples run as written: every `curl` command of its ```sh blocks is run
by a real shell against a live web tier on a demo site, with a token of the demo admin in
`$TOKEN`, and must answer 2xx with JSON.

Only the host and port are changed (the README says http://127.0.0.1:8000, the test's server
listens on a free port). The other ```sh lines (`make run`, the production `export`s) start or
configure a whole deployment and are not run here; `make test` itself runs this file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from waitress.server import create_server

from common.access.api_tokens import SCOPES, issue
from common.appdb import AppDB
from common.migrate import upgrade
from common.moodle.demo import seed_site
from common.moodle.demo.model import ADMIN_ID
from common.nats_server import free_port
from tests.support import REPO, make_settings
from web.app import create_app

README = REPO / "README.md"
README_BASE = "http://127.0.0.1:8000"


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)


def curl_commands(text: str) -> list[str]:
    """Each `curl …` command of the ```sh blocks, continuation lines joined."""
    commands = []
    for block in shell_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [
            line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")
        ]
    return commands


def test_the_readme_has_curl_examples():
    commands = curl_commands(README.read_text())
    assert len(commands) >= 3
    assert all(README_BASE in c for c in commands), "an example names another host"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, nats_server) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """A web tier on a small demo site, and an API token of the demo admin (every scope)."""
    root = tmp_path_factory.mktemp("readme")
    seed_site(f"sqlite:///{root / 'moodle.db'}", users=60, courses=4, companies=2, days=30, seed=3)
    settings = make_settings(root, MOODLE_DATABASE_URL=f"sqlite:///{root / 'moodle.db'}",
                             NATS_URL=nats_server.url)  # fmt: skip
    upgrade(settings.database_url)
    appdb = AppDB(settings.database_url)
    with appdb.transaction() as db:
        token, _ = issue(db, ADMIN_ID, "README examples", SCOPES, None, None)
    appdb.dispose()
    app = create_app(settings)
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", token
    server.close()
    app.extensions["manireports"].close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("number", range(len(curl_commands(README.read_text()))))
def test_readme_curl_example_runs(live, number: int):  # type: ignore[no-untyped-def]
    base, token = live
    command = curl_commands(README.read_text())[number].replace(README_BASE, base)
    # As written, plus: quiet, and the status on a last line of its own.
    run = subprocess.run(["sh", "-c", command + " -sS -w '\\n%{http_code}'"],
                         env={"TOKEN": token, "PATH": "/usr/bin:/bin"}, capture_output=True,
                         text=True, timeout=60, cwd=Path(REPO))  # fmt: skip
    assert run.returncode == 0, run.stderr
    body, _, status = run.stdout.rpartition("\n")
    assert status.startswith("2"), f"{command}\n→ {status}: {body[:500]}"
    json.loads(body)  # every example answers JSON
