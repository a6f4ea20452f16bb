"""PostgreSQL databases for the tests, made cheap enough to give every test one of its own.

On PostgreSQL a database costs little to copy and much to fill: creating the Moodle tables and
the two-company site runs some 400 DDL and INSERT statements (seconds on a loaded machine),
and DROP DATABASE waits for a checkpoint. So:

- what most tests start from (a migrated app DB, the two-company site of
  tests/factories/sites.py) is built once per test process into a template database, and each
  test's database is a `CREATE DATABASE … TEMPLATE` copy of it;
- a finished test's database is dropped by a background thread, not in the test's teardown;
  the session's end waits for the drops and drops the templates.
"""

from __future__ import annotations

import copy
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from itertools import count

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from common.db import make_engine


class PostgresServer:
    """The server of MANIREPORTS_TEST_POSTGRES_URL: creates, copies and drops databases."""

    def __init__(self, url: str) -> None:
        self.server = make_url(url)
        self._admin: Engine | None = None
        self._templates: dict[str, str] = {}
        self._template_lock = threading.Lock()
        self._drops: queue.Queue[str | None] = queue.Queue()
        self._dropper: threading.Thread | None = None

    @property
    def admin(self) -> Engine:
        if self._admin is None:
            url = self.server.render_as_string(hide_password=False)
            self._admin = make_engine(url, isolation_level="AUTOCOMMIT")
        return self._admin

    def url_of(self, name: str) -> str:
        return self.server.set(database=name).render_as_string(hide_password=False)

    def create(self, prefix: str, template: str = "template0") -> str:
        """A new database (a copy of `template`); its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" ENCODING \'UTF8\''))
        return name

    def database(self, prefix: str, template: str = "template0") -> Iterator[str]:
        """A fresh database's URL for one test; dropped in the background afterwards."""
        name = self.create(prefix, template)
        try:
            yield self.url_of(name)
        finally:
            self.drop_later(name)

    def template(self, key: str, fill: Callable[[str], None]) -> str:
        """The template database `key`, filled by `fill(url)` the first time it is asked for."""
        with self._template_lock:
            if key not in self._templates:
                name = self.create(f"mr_tpl_{key}")
                try:
                    fill(self.url_of(name))
                except BaseException:
                    self._drop(name)
                    raise
                self._templates[key] = name
            return self._templates[key]

    def drop_later(self, name: str) -> None:
        if self._dropper is None:
            self._dropper = threading.Thread(target=self._drop_queued, daemon=True)
            self._dropper.start()
        self._drops.put(name)

    def _drop_queued(self) -> None:
        while (name := self._drops.get()) is not None:
            self._drop(name)

    def _drop(self, name: str) -> None:
        # WITH (FORCE): an engine a test left open does not keep its database alive.
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        """Wait for the queued drops, then drop the templates."""
        if self._dropper is not None:
            self._drops.put(None)
            self._dropper.join()
            self._dropper = None
        for name in self._templates.values():
            self._drop(name)
        self._templates.clear()
        if self._admin is not None:
            self._admin.dispose()
            self._admin = None


def copied_site(template_site, next_number: int, url: str):  # type: ignore[no-untyped-def]
    """The template's Site object for a copy of its database at `url`: the same facts, and a
    factory writing to the copy that numbers new rows where the template's would have."""
    factory = copy.copy(template_site.moodle)
    factory.engine = make_engine(url)
    factory._numbers = count(next_number)
    factory._hashes = dict(template_site.moodle._hashes)
    site = copy.copy(template_site)
    for name, value in vars(template_site).items():
        if isinstance(value, (dict, list, set)):
            setattr(site, name, copy.deepcopy(value))
    site.url, site.moodle = url, factory
    return site
