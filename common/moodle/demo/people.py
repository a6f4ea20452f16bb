"""The demo site's accounts: guest and admin as a fresh install makes them, then teachers and
learners with the mix a real site has (suspended, deleted, LDAP, unconfirmed, legacy bcrypt)."""

from __future__ import annotations

import hashlib
import random
import unicodedata
from collections.abc import Iterator
from typing import Any

from common.moodle.demo.access import AccessTracker
from common.moodle.demo.model import ADMIN_ID, DAY, GUEST_ID, HOUR, DemoSite, Person
from common.moodle.demo.passwords import NOT_CACHED, PasswordPool
from common.moodle.demo.vocabulary import CITIES, FIRST_NAMES, LAST_NAMES, TIMEZONES

# The site was installed this long before the seeded window opens.
SITE_AGE_DAYS = 400
# Shares of the learners (each at least one account where the site is big enough).
DELETED_SHARE = 0.01
SUSPENDED_SHARE = 0.02
LDAP_SHARE = 0.03
UNCONFIRMED_SHARE = 0.005
LEGACY_BCRYPT_SHARE = 0.05
NEVER_ACTIVE_SHARE = 0.12
CREATED_IN_WINDOW_SHARE = 0.15

# Demo logins with names that are easy to type (company managers get `manager.<company>`).
DEMO_TEACHER, DEMO_STUDENT = "teacher", "student"
_GUEST_DESCRIPTION = "This user is a special user that allows read-only access to some courses."

USER_COLUMNS = (
    "id", "auth", "confirmed", "policyagreed", "deleted", "suspended", "mnethostid", "username",
    "password", "idnumber", "firstname", "lastname", "email", "city", "country", "lang",
    "timezone", "firstaccess", "lastaccess", "lastlogin", "currentlogin", "lastip", "picture",
    "description", "timecreated", "timemodified",
)  # fmt: skip


def site_installed_at(site: DemoSite) -> int:
    return site.clock.start - SITE_AGE_DAYS * DAY


def plan_people(
    site: DemoSite, rng: random.Random, *, accounts: int, teachers: int, pool: PasswordPool
) -> None:
    """Guest (id 1), admin (id 2), then `accounts` teachers and learners in shuffled order."""
    installed = site_installed_at(site)
    guest = Person(GUEST_ID, "guest", "Guest user", " ", "root@localhost", "guest")
    admin = Person(ADMIN_ID, "admin", "Admin", "User", "admin@example.com", "admin")
    guest.password = pool.sha512(0)
    admin.password = pool.sha512(1)
    admin.engagement = 0.3
    guest.timecreated = admin.timecreated = installed
    site.people += [guest, admin]

    kinds = ["teacher"] * teachers + ["learner"] * (accounts - teachers)
    rng.shuffle(kinds)
    for user_id, kind in enumerate(kinds, start=ADMIN_ID + 1):
        site.people.append(_person(site, rng, user_id, kind, pool))

    learners = [p for p in site.people if p.kind == "learner"]
    demo_teacher = next(p for p in site.people if p.kind == "teacher")
    demo_student = learners[0]
    _rename(demo_teacher, DEMO_TEACHER, engagement=0.7)
    _rename(demo_student, DEMO_STUDENT, engagement=0.85)
    _assign_statuses(site, rng, learners[1:], pool)


def _person(
    site: DemoSite, rng: random.Random, user_id: int, kind: str, pool: PasswordPool
) -> Person:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    username = f"{_ascii(first)}.{_ascii(last)}{user_id}"
    city, country = rng.choice(CITIES)
    if rng.random() < CREATED_IN_WINDOW_SHARE:
        created = rng.randint(site.clock.start, site.clock.now - HOUR)
    else:
        created = rng.randint(site_installed_at(site) + DAY, site.clock.start)
    if kind == "teacher":
        engagement = rng.uniform(0.3, 0.8)
    elif rng.random() < NEVER_ACTIVE_SHARE:
        engagement = 0.0
    else:
        engagement = max(0.05, rng.betavariate(2.0, 2.5))
    return Person(
        id=user_id,
        username=username,
        firstname=first,
        lastname=last,
        email=f"{username}@example.com",
        kind=kind,
        password=pool.sha512(user_id),
        timecreated=created,
        idnumber=f"EMP{user_id:06d}" if rng.random() < 0.9 else "",
        city=city,
        country=country,
        timezone=rng.choice(TIMEZONES),
        engagement=engagement,
    )


def _ascii(name: str) -> str:
    # Moodle usernames are lower-case ASCII by default (PARAM_USERNAME).
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _rename(person: Person, username: str, *, engagement: float) -> None:
    person.username = username
    person.email = f"{username}@example.com"
    person.engagement = engagement


def _assign_statuses(
    site: DemoSite, rng: random.Random, learners: list[Person], pool: PasswordPool
) -> None:
    picked = iter(rng.sample(learners, len(learners)))

    def take(share: float, at_least: int = 1) -> list[Person]:
        return [next(picked) for _ in range(max(at_least, round(len(learners) * share)))]

    for person in take(DELETED_SHARE):
        person.deleted = 1
        person.timedeleted = rng.randint(max(person.timecreated, site.clock.start), site.clock.now)
    for person in take(SUSPENDED_SHARE):
        person.suspended = 1
    for person in take(LDAP_SHARE):
        person.auth, person.password = "ldap", NOT_CACHED
    for person in take(0, at_least=1):
        person.auth = "nologin"
    for person in take(UNCONFIRMED_SHARE, at_least=0):
        # Self-registered through email-based signup, never confirmed.
        person.auth, person.confirmed = "email", 0
    demo = (DEMO_TEACHER, DEMO_STUDENT)
    local = [p for p in site.people[ADMIN_ID:] if p.auth == "manual" and p.username not in demo]
    for index, person in enumerate(rng.sample(local, round(len(local) * LEGACY_BCRYPT_SHARE))):
        person.password = pool.bcrypt(index)


def user_rows(site: DemoSite, access: AccessTracker) -> Iterator[tuple[Any, ...]]:
    for person in site.people:
        lastlogin, currentlogin = access.logins.get(person.id, (0, 0))
        username, email, idnumber = person.username, person.email, person.idnumber
        modified = person.timecreated
        if person.deleted:
            # delete_user(): the row stays, its identifiers are freed (NOTES.md §6).
            username = f"{person.email}.{person.timedeleted}"
            email = hashlib.md5(person.username.encode(), usedforsecurity=False).hexdigest()
            idnumber, modified = "", person.timedeleted
        yield (
            person.id, person.auth, person.confirmed, 1 if person.id > GUEST_ID else 0,
            person.deleted, person.suspended, 1, username, person.password, idnumber,
            person.firstname, person.lastname, email, person.city, person.country, "en",
            person.timezone, access.first_access.get(person.id, 0),
            access.last_access.get(person.id, 0), lastlogin, currentlogin,
            person.ip if currentlogin else "", 0,
            _GUEST_DESCRIPTION if person.id == GUEST_ID else None, person.timecreated, modified,
        )  # fmt: skip
