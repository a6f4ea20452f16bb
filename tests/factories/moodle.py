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

import hashlib
import json
import random
import secrets
import time
from itertools import count
from typing import Any, NamedTuple

from sqlalchemy import Engine, select

from common.moodle.demo import events
from common.moodle.demo.contexts import COMPANY, COURSE, COURSECAT, MODULE, SYSTEM, USER
from common.moodle.demo.model import ADMIN_ID, GUEST_ID, SITE_COURSE_ID
from common.moodle.demo.passwords import bcrypt_hash, bcrypt_salt, sha512_crypt_hash, sha512_salt
from common.moodle.demo.site import (
    config_plugin_rows,
    config_rows,
    module_ids,
    module_rows,
    role_ids,
    role_rows,
    site_course_row,
)
from common.moodle.tables import (
    MoodleTables,
    ScormLayout,
    recreate_site_tables,
    sync_id_sequences,
)

DEFAULT_PASSWORD = "Test-Password-1"
_SALTS = random.SystemRandom()
_KNOWN_EVENTS = {
    kind.eventname: kind for kind in vars(events).values() if isinstance(kind, events.EventKind)
} | {kind.eventname: kind for kind in events.MODULE_VIEWED.values()}


class ModuleRef(NamedTuple):
    cm_id: int
    instance: int
    context_id: int
    sco_id: int = 0  # SCORM only: the package's one SCO


def hash_password(password: str, scheme: str = "sha512") -> str:
    """A Moodle hash of `password`: "sha512" crypt (4.3+) or legacy "bcrypt" `$2y$10$`."""
    if scheme == "sha512":
        return sha512_crypt_hash(password, sha512_salt(_SALTS))
    if scheme == "bcrypt":
        return bcrypt_hash(password, bcrypt_salt(_SALTS))
    raise ValueError(f"unknown password scheme {scheme!r}")


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
        self.engine, self.prefix = engine, prefix
        self.iomad, self.scorm_layout = iomad, scorm_layout
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
            sync_id_sequences(
                connection,
                [self.tables[name] for name in ("config", "config_plugins", "role", "modules",
                                                "course", "context")],
            )  # fmt: skip
        self._context(COURSE, SITE_COURSE_ID)
        self.user(id=GUEST_ID, username="guest", firstname="Guest user", lastname=" ")
        self.user(id=ADMIN_ID, username="admin", firstname="Admin", lastname="User")
        self.default_category = self.category(name="Category 1")

    # --- plumbing ---------------------------------------------------------------------------

    def insert(self, table: str, **values: Any) -> int:
        """Insert one row into a Moodle table (unprefixed name); returns its id."""
        with self.engine.begin() as connection:
            result = connection.execute(self.tables[table].insert().values(**values))
            if "id" in values:  # a fixed id: the next one the database picks comes after it
                sync_id_sequences(connection, [self.tables[table]])
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
                connection.execute(config.update().where(config.c.name == name).values(value=value))

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
        when = self.now if when is None else when
        user = self.tables.user
        with self.engine.connect() as connection:
            row = connection.execute(select(user).where(user.c.id == user_id)).one()
        self._update(
            "user", user_id, deleted=1, username=f"{row.email}.{when}", idnumber="", picture=0,
            email=hashlib.md5(row.username.encode(), usedforsecurity=False).hexdigest(),
            timemodified=when,
        )  # fmt: skip

    # --- catalogue ----------------------------------------------------------------------------

    def category(self, **overrides: Any) -> int:
        parent = overrides.get("parent", 0)
        category_id = self.insert(
            "course_categories", **{"name": f"Category {next(self._numbers)}", **overrides}
        )
        parent_path = self._category_path(parent) if parent else ""
        path = f"{parent_path}/{category_id}"
        self._update("course_categories", category_id, path=path, depth=path.count("/"))
        parent_context = self.context_id(COURSECAT, parent) if parent else 1
        self._context(COURSECAT, category_id, parent_context)
        return category_id

    def _category_path(self, category_id: int) -> str:
        categories = self.tables.course_categories
        with self.engine.connect() as connection:
            return str(
                connection.scalar(select(categories.c.path).where(categories.c.id == category_id))
            )

    def course(self, **overrides: Any) -> int:
        number = next(self._numbers)
        values = {
            "category": self.default_category, "fullname": f"Course {number}",
            "shortname": f"C{number}", "format": "topics", "startdate": self.now - 30 * 86_400,
            "enablecompletion": 1, "timecreated": self.now, "timemodified": self.now,
            **overrides,
        }  # fmt: skip
        course_id = self.insert("course", **values)
        self._context(COURSE, course_id, self.context_id(COURSECAT, values["category"]))
        if self.iomad:
            self.insert("iomad_courses", courseid=course_id, licensed=0, shared=0)
        return course_id

    def module(self, course_id: int, modname: str = "page", **overrides: Any) -> ModuleRef:
        """A course module (completion automatic by default) of an instance of `modname`."""
        values = {
            "course": course_id, "module": module_ids()[modname],
            "instance": next(self._numbers), "added": self.now, "completion": 2, **overrides,
        }  # fmt: skip
        cm_id = self.insert("course_modules", **values)
        context_id = self._context(MODULE, cm_id, self.context_id(COURSE, course_id))
        return ModuleRef(cm_id, values["instance"], context_id)

    def quiz(self, course_id: int, **overrides: Any) -> ModuleRef:
        values = {"course": course_id, "name": "Quiz", "intro": "", "sumgrades": 10.0,
                  "grade": 10.0, "timecreated": self.now, **overrides}  # fmt: skip
        quiz_id = self.insert("quiz", **values)
        return self.module(course_id, "quiz", instance=quiz_id)

    def scorm(self, course_id: int, version: str = "SCORM_1.2", **overrides: Any) -> ModuleRef:
        """A SCORM package with one SCO (after its organization row)."""
        values = {"course": course_id, "name": "SCORM package", "intro": "",
                  "version": version, "maxgrade": 100.0, **overrides}  # fmt: skip
        scorm_id = self.insert("scorm", **values)
        self.insert("scorm_scoes", scorm=scorm_id, identifier="ORG-1", launch="", title="Org")
        sco_id = self.insert(
            "scorm_scoes", scorm=scorm_id, organization="ORG-1", parent="ORG-1",
            identifier="SCO-1", launch="index.html", scormtype="sco", title="Lesson",
        )  # fmt: skip
        self._update("scorm", scorm_id, launch=sco_id)
        return self.module(course_id, "scorm", instance=scorm_id)._replace(sco_id=sco_id)

    # --- enrolment and progress -------------------------------------------------------------

    def enrol(
        self,
        user_id: int,
        course_id: int,
        role: str = "student",
        method: str = "manual",
        timestart: int | None = None,
        status: int = 0,
        timeend: int = 0,
    ) -> int:
        """Enrol through the course's `method` instance (made if missing) and assign `role` in
        the course context; returns the user_enrolments id."""
        enrol = self.tables.enrol
        with self.engine.connect() as connection:
            enrol_id = connection.scalar(
                select(enrol.c.id).where(enrol.c.courseid == course_id, enrol.c.enrol == method)
            )
        if enrol_id is None:
            enrol_id = self.insert(
                "enrol", enrol=method, status=0, courseid=course_id,
                roleid=self.roles["student"], timecreated=self.now, timemodified=self.now,
            )  # fmt: skip
        start = self.now - 86_400 if timestart is None else timestart
        enrolment_id = self.insert(
            "user_enrolments", enrolid=enrol_id, userid=user_id, status=status, timestart=start,
            timeend=timeend, modifierid=ADMIN_ID, timecreated=start, timemodified=start,
        )  # fmt: skip
        self.assign_role(user_id, role, self.context_id(COURSE, course_id), when=start)
        return enrolment_id

    def assign_role(self, user_id: int, role: str, context_id: int, when: int | None = None) -> int:
        assignments = self.tables.role_assignments
        roleid = self.roles[role]
        with self.engine.connect() as connection:
            existing = connection.scalar(
                select(assignments.c.id).where(
                    assignments.c.userid == user_id,
                    assignments.c.roleid == roleid,
                    assignments.c.contextid == context_id,
                )
            )
        if existing is not None:
            return int(existing)
        return self.insert(
            "role_assignments", roleid=roleid, contextid=context_id, userid=user_id,
            timemodified=self.now if when is None else when, modifierid=ADMIN_ID,
        )  # fmt: skip

    def complete(self, user_id: int, course_id: int, when: int | None = None) -> int:
        """Mark the course complete at `when` (course_completions row made or updated)."""
        when = self.now if when is None else when
        completions = self.tables.course_completions
        with self.engine.connect() as connection:
            existing = connection.scalar(
                select(completions.c.id).where(
                    completions.c.userid == user_id, completions.c.course == course_id
                )
            )
        if existing is not None:
            self._update("course_completions", existing, timecompleted=when)
            return int(existing)
        return self.insert(
            "course_completions", userid=user_id, course=course_id,
            timeenrolled=when - 7 * 86_400, timestarted=when - 6 * 86_400, timecompleted=when,
        )  # fmt: skip

    def module_completion(
        self, user_id: int, cm_id: int, state: int = 1, when: int | None = None, **overrides: Any
    ) -> int:
        return self.insert(
            "course_modules_completion", coursemoduleid=cm_id, userid=user_id,
            completionstate=state, timemodified=self.now if when is None else when, **overrides,
        )  # fmt: skip

    def quiz_attempt(self, user_id: int, quiz: ModuleRef, **overrides: Any) -> int:
        """A finished attempt by default; `state="inprogress"` leaves sumgrades NULL."""
        state = overrides.get("state", "finished")
        finished = state == "finished"
        values = {
            "quiz": quiz.instance, "userid": user_id, "attempt": 1,
            "uniqueid": next(self._numbers), "layout": "1,0", "state": state,
            "timestart": self.now - 600, "timefinish": self.now if finished else 0,
            "timemodified": self.now, "sumgrades": 7.0 if finished else None, **overrides,
        }  # fmt: skip
        return self.insert("quiz_attempts", **values)

    def scorm_track(
        self,
        user_id: int,
        scorm: ModuleRef,
        element: str,
        value: str,
        attempt: int = 1,
        when: int | None = None,
    ) -> int:
        """One CMI element value in the site's SCORM layout; returns the track/value row id."""
        when = self.now if when is None else when
        if self.scorm_layout == "track":
            return self.insert(
                "scorm_scoes_track", userid=user_id, scormid=scorm.instance, scoid=scorm.sco_id,
                attempt=attempt, element=element, value=value, timemodified=when,
            )  # fmt: skip
        t = self.tables
        with self.engine.connect() as connection:
            attempt_id = connection.scalar(
                select(t.scorm_attempt.c.id).where(
                    t.scorm_attempt.c.userid == user_id,
                    t.scorm_attempt.c.scormid == scorm.instance,
                    t.scorm_attempt.c.attempt == attempt,
                )
            )
            element_id = connection.scalar(
                select(t.scorm_element.c.id).where(t.scorm_element.c.element == element)
            )
        if attempt_id is None:
            attempt_id = self.insert(
                "scorm_attempt", userid=user_id, scormid=scorm.instance, attempt=attempt
            )
        if element_id is None:
            element_id = self.insert("scorm_element", element=element)
        return self.insert(
            "scorm_scoes_value", scoid=scorm.sco_id, attemptid=attempt_id, elementid=element_id,
            value=value, timemodified=when,
        )  # fmt: skip

    # --- IOMAD --------------------------------------------------------------------------------

    def company(self, **overrides: Any) -> int:
        """A company with its context (level 13), course category and top department."""
        number = next(self._numbers)
        values = {"name": f"Company {number}", "shortname": f"company{number}",
                  "city": "London", "country": "GB", **overrides}  # fmt: skip
        if "category" not in values:
            values["category"] = self.category(name=values["name"])
        company_id = self.insert("company", **values)
        self._context(COMPANY, company_id)
        self.department(company_id, name=values["name"], shortname=values["shortname"])
        return company_id

    def department(self, company_id: int, parent: int = 0, **overrides: Any) -> int:
        number = next(self._numbers)
        values = {"name": f"Department {number}", "shortname": f"dept{number}", **overrides}
        return self.insert("department", company=company_id, parent=parent, **values)

    def top_department(self, company_id: int) -> int:
        department = self.tables.department
        with self.engine.connect() as connection:
            return int(
                connection.scalar(
                    select(department.c.id).where(
                        department.c.company == company_id, department.c.parent == 0
                    )
                )
            )

    def company_user(
        self, company_id: int, user_id: int, managertype: int = 0, **overrides: Any
    ) -> int:
        """Membership (top department unless `departmentid=`); managers also get IOMAD's role
        in the company context."""
        values = {"departmentid": self.top_department(company_id), **overrides}
        row_id = self.insert(
            "company_users", companyid=company_id, userid=user_id, managertype=managertype,
            **values,
        )  # fmt: skip
        role = {1: "companymanager", 2: "companydepartmentmanager"}.get(managertype)
        if role:
            self.assign_role(user_id, role, self.context_id(COMPANY, company_id))
        return row_id

    def company_course(self, company_id: int, course_id: int, **overrides: Any) -> int:
        values = {"departmentid": self.top_department(company_id), **overrides}
        return self.insert("company_course", companyid=company_id, courseid=course_id, **values)

    def share_course(
        self, course_id: int, shared: int = 1, companies: tuple[int, ...] = ()
    ) -> None:
        """iomad_courses.shared: 1 open to all companies, 2 closed to `companies` only."""
        iomad_courses = self.tables.iomad_courses
        with self.engine.begin() as connection:
            connection.execute(
                iomad_courses.update()
                .where(iomad_courses.c.courseid == course_id)
                .values(shared=shared)
            )
        for company_id in companies:
            self.insert("company_shared_courses", companyid=company_id, courseid=course_id)

    def email(self, **overrides: Any) -> int:
        """An IOMAD queued email, unsent (`sent` NULL) by default."""
        values = {"templatename": "user_create", "modifiedtime": self.now, "sent": None,
                  "subject": "Welcome", "body": "Hello", "userid": ADMIN_ID, "due": self.now,
                  **overrides}  # fmt: skip
        return self.insert("email", **values)

    # --- web services -------------------------------------------------------------------------

    def enable_web_services(self, enabled: bool = True) -> None:
        """Site config `enablewebservices` (Moodle refuses every token while it is 0)."""
        self.config("enablewebservices", "1" if enabled else "0")

    def external_service(self, **overrides: Any) -> int:
        """An external_services row: enabled and open to every user (`restrictedusers` 0)."""
        number = next(self._numbers)
        values = {"name": f"Service {number}", "shortname": f"service{number}", "enabled": 1,
                  "restrictedusers": 0, "timecreated": self.now, "timemodified": self.now,
                  **overrides}  # fmt: skip
        return self.insert("external_services", **values)

    def external_service_user(self, service_id: int, user_id: int, **overrides: Any) -> int:
        """A user allowed on a restricted service (`validuntil`/`iprestriction` unset)."""
        values = {"externalserviceid": service_id, "userid": user_id, "timecreated": self.now,
                  **overrides}  # fmt: skip
        return self.insert("external_services_users", **values)

    def external_token(self, user_id: int, service_id: int | None = None, **overrides: Any) -> int:
        """A permanent web-service token (tokentype 0) in the system context, as the admin's
        "Manage tokens" page creates it: no expiry (`validuntil` 0), no IP restriction. The
        value defaults to 32 hex characters like Moodle's; pass `token=` to know it. Without
        `service_id`, a new enabled service is made for it."""
        if service_id is None:
            service_id = self.external_service()
        values = {"token": secrets.token_hex(16), "tokentype": 0, "userid": user_id,
                  "externalserviceid": service_id, "contextid": 1, "creatorid": ADMIN_ID,
                  "validuntil": 0, "timecreated": self.now, **overrides}  # fmt: skip
        return self.insert("external_tokens", **values)

    # --- logs ---------------------------------------------------------------------------------

    def log(self, **overrides: Any) -> int:
        """A logstore_standard_log row. Defaults to `\\core\\event\\course_viewed`;
        component, action, target, crud and edulevel follow from `eventname` (Moodle's rules)
        unless given; the context is the course's when `courseid` is given (or the one named by
        contextlevel + contextinstanceid), else the system context. `other` may be a dict."""
        eventname = overrides.pop("eventname", events.COURSE_VIEWED.eventname)
        kind = _KNOWN_EVENTS.get(eventname)
        component = eventname.split("\\")[1]
        target, action = eventname.rsplit("\\", 1)[1].rsplit("_", 1)
        courseid = overrides.get("courseid", 0)
        level = overrides.get("contextlevel", COURSE if courseid else SYSTEM)
        instance = overrides.get("contextinstanceid", courseid if level == COURSE else 0)
        other = overrides.pop("other", None)
        values = {
            "eventname": eventname, "component": component, "action": action, "target": target,
            "objecttable": kind.objecttable if kind else None,
            "crud": kind.crud if kind else "r", "edulevel": kind.edulevel if kind else 0,
            "contextid": self.context_id(level, instance) if level != SYSTEM else 1,
            "contextlevel": level, "contextinstanceid": instance, "userid": ADMIN_ID,
            "courseid": courseid, "anonymous": 0,
            "other": other if isinstance(other, str) else json.dumps(other, separators=(",", ":")),
            "timecreated": self.now, "origin": "web", "ip": "127.0.0.1", **overrides,
        }  # fmt: skip
        return self.insert("logstore_standard_log", **values)
