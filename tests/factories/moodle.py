"""Moodle/IOMAD rows for tests, with defaults that make sense, so a test states only what matters.

    moodle = MoodleFactory(engine)              # empty DB -> Moodle schema + fresh-install rows
    course = moodle.course(fullname="Fire Safety")
    learner = moodle.user(firstname="Ana")
    moodle.enrol(learner, course)               # enrol instance, user_enrolments, role_assignment
    moodle.complete(learner, course, when=moodle.now - 3600)
    acme = moodle.company(name="Acme")          # + company context (level 13), top department
    moodle.company_user(acme, learner, managertype=1)
    moodle.company_course(acme, course)
    moodle.log(userid=learner, courseid=course) # \\core\\event\\course_viewed in the course context

What the constructor creates (like a fresh install): config (siteadmins '2', siteguest '1'),
the standard roles (+ IOMAD's companymanager/companydepartmentmanager with `iomad=True`), the
modules table, guest (id 1) and admin (id 2), the site course (id 1), the system context (id 1)
and "Category 1". `iomad=False` leaves out IOMAD's tables; `scorm_layout` picks `attempt`
(Moodle 4.3+) or `track` (≤ 4.2) tables. Everything is dropped and recreated, so point it at a
test database and a prefix of its own.

Conventions: builders return the new row's id (`module`, `quiz` and `scorm` return a
ModuleRef); keyword overrides are column values of the main row. `user(password=...)` takes
the plain password and stores a SHA-512 crypt hash (`password_scheme="bcrypt"` for a legacy
`$2y$` one); `password_hash=` stores a value as-is (e.g. "not cached"). Times default to
`moodle.now` (fixed at construction; pass `now=` for a fixed clock).
"""

from __future__ import annotations

import json
import secrets
import time
from itertools import count
from typing import Any, NamedTuple

from sqlalchemy import Engine, select

from common.moodle.demo import events
from common.moodle.demo.contexts import COMPANY, COURSE, COURSECAT, MODULE, SYSTEM, USER
from common.moodle.demo.model import ADMIN_ID, GUEST_ID, SITE_COURSE_ID
from common.moodle.demo.passwords import bcrypt_hash, sha512_crypt_hash
from common.moodle.demo.site import (
    config_plugin_rows,
    config_rows,
    module_ids,
    module_rows,
    role_ids,
    role_rows,
    site_course_row,
)
from common.moodle.tables import MoodleTables, ScormLayout, recreate_site_tables

DEFAULT_PASSWORD = "Test-Password-1"
_KNOWN_EVENTS = {
    kind.eventname: kind for kind in vars(events).values() if isinstance(kind, events.EventKind)
} | {kind.eventname: kind for kind in events.MODULE_VIEWED.values()}


class ModuleRef(NamedTuple):
    cm_id: int
    instance: int
    context_id: int
    sco_id: int = 0  # SCORM only: the package's one SCO


def hash_password(password: str, scheme: str = "sha512") -> str:
    """A Moodle hash of `password`: SHA-512 crypt (4.3+) or legacy bcrypt `$2y$10$`."""
    alphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    if scheme == "bcrypt":
        salt = "".join(secrets.choice(alphabet) for _ in range(21)) + secrets.choice(".Oeu")
        return bcrypt_hash(password, salt)
    return sha512_crypt_hash(password, "".join(secrets.choice(alphabet) for _ in range(16)))


class MoodleFactory:
    GUEST_ID, ADMIN_ID, SITE_COURSE_ID = GUEST_ID, ADMIN_ID, SITE_COURSE_ID

    def __init__(
        self,
        engine: Engine,
        prefix: str = "mdl_",
        *,
        iomad: bool = True,
        scorm_layout: ScormLayout = "attempt",
        now: int | None = None,
    ) -> None:
        self.engine, self.prefix, self.iomad, self.scorm_layout = engine, prefix, iomad, scorm_layout
        self.tables = MoodleTables(prefix)
        self.now = int(time.time()) if now is None else now
        self.roles = role_ids(iomad)
        self._numbers = count(1)
        self._hashes: dict[tuple[str, str], str] = {}
        with engine.begin() as connection:
            recreate_site_tables(connection, prefix, iomad=iomad, scorm_layout=scorm_layout)
            for table, rows in (
                ("config", config_rows(scorm_layout=scorm_layout, iomad=iomad)),
                ("config_plugins", config_plugin_rows(scorm_layout=scorm_layout, iomad=iomad)),
                ("role", role_rows(iomad)),
                ("modules", module_rows()),
            ):
                connection.execute(self.tables[table].insert(), rows)
            connection.execute(
                self.tables.course.insert(),
                [site_course_row(fullname="Test site", shortname="test", installed_at=self.now)],
            )
            connection.execute(
                self.tables.context.insert(),
                [{"id": 1, "contextlevel": SYSTEM, "instanceid": 0, "path": "/1", "depth": 1}],
            )
        self._context(COURSE, SITE_COURSE_ID)
        self.user(id=GUEST_ID, username="guest", firstname="Guest user", lastname=" ")
        self.user(id=ADMIN_ID, username="admin", firstname="Admin", lastname="User")
        self.default_category = self.category(name="Category 1")

    # --- plumbing ---------------------------------------------------------------------------

    def insert(self, table: str, **values: Any) -> int:
        """Insert one row into a Moodle table (unprefixed name); returns its id."""
        with self.engine.begin() as connection:
            result = connection.execute(self.tables[table].insert().values(**values))
            return int(result.inserted_primary_key[0])

    def context_id(self, level: int, instance: int) -> int:
        context = self.tables.context
        with self.engine.connect() as connection:
            return int(
                connection.scalar(
                    select(context.c.id).where(
                        context.c.contextlevel == level, context.c.instanceid == instance
                    )
                )
            )

    def _context(self, level: int, instance: int, parent: int = 1) -> int:
        with self.engine.connect() as connection:
            context = self.tables.context
            parent_path = connection.scalar(select(context.c.path).where(context.c.id == parent))
        context_id = self.insert("context", contextlevel=level, instanceid=instance, depth=0)
        path = f"{parent_path}/{context_id}"
        self._update("context", context_id, path=path, depth=path.count("/"))
        return context_id

    def _update(self, table: str, row_id: int, **values: Any) -> None:
        moodle_table = self.tables[table]
        with self.engine.begin() as connection:
            connection.execute(
                moodle_table.update().where(moodle_table.c.id == row_id).values(**values)
            )

    # --- site ---------------------------------------------------------------------------------

    def config(self, name: str, value: str) -> None:
        config = self.tables.config
        with self.engine.begin() as connection:
            if connection.scalar(select(config.c.id).where(config.c.name == name)) is None:
                connection.execute(config.insert().values(name=name, value=value))
            else:
                connection.execute(
                    config.update().where(config.c.name == name).values(value=value)
                )

    def site_admins(self, user_ids: list[int]) -> None:
        self.config("siteadmins", ",".join(str(user_id) for user_id in user_ids))

    def password_hash(self, password: str, scheme: str = "sha512") -> str:
        """Hash once per (password, scheme) per factory: 10,000 rounds take milliseconds."""
        key = (password, scheme)
        if key not in self._hashes:
            self._hashes[key] = hash_password(password, scheme)
        return self._hashes[key]

    def user(self, **overrides: Any) -> int:
        number = next(self._numbers)
        password = overrides.pop("password", DEFAULT_PASSWORD)
        scheme = overrides.pop("password_scheme", "sha512")
        stored = overrides.pop("password_hash", None) or self.password_hash(password, scheme)
        username = overrides.get("username", f"user{number}")
        values = {
            "auth": "manual", "confirmed": 1, "mnethostid": 1, "username": username,
            "password": stored, "firstname": f"First{number}", "lastname": f"Last{number}",
            "email": f"{username}@example.com", "timecreated": self.now,
            "timemodified": self.now, **overrides,
        }  # fmt: skip
        user_id = self.insert("user", **values)
        self._context(USER, user_id)
        return user_id

    def delete_user(self, user_id: int, when: int | None = None) -> None:
        """Mark deleted the way delete_user() does: username/email rewritten, idnumber freed."""
        import hashlib

        when = self.now if when is None else when
        user = self.tables.user
        with self.engine.connect() as connection:
            row = connection.execute(select(user).where(user.c.id == user_id)).one()
        self._update(
            "user", user_id, deleted=1, username=f"{row.email}.{when}", idnumber="", picture=0,
            email=hashlib.md5(row.username.encode(), usedforsecurity=False).hexdigest(),
            timemodified=when,
        )  # fmt: skip
