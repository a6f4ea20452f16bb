"""The demo site generator: deterministic, complete, and shaped like a real Moodle/IOMAD site."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pytest
from passlib.hash import bcrypt, sha512_crypt
from sqlalchemy import func, select

from common.db import make_engine
from common.moodle import MoodleSource, MoodleTables, SiteFeatures
from common.moodle.demo import DEMO_PASSWORD, DemoSizeError, SeedSummary, seed_site
from common.moodle.tables import site_tables

NOW = 1_767_225_600  # 2026-01-01 00:00 UTC
DAYS = 10
SIZE = {"users": 60, "courses": 6, "companies": 3, "days": DAYS, "now": NOW}


@dataclass
class Seeded:
    url: str
    prefix: str
    summary: SeedSummary

    @property
    def tables(self) -> MoodleTables:
        return MoodleTables(self.prefix)

    def rows(self, table: str, order_by: str = "id") -> list:
        engine = make_engine(self.url)
        try:
            with engine.connect() as connection:
                t = self.tables[table]
                return list(connection.execute(select(t).order_by(t.c[order_by])))
        finally:
            engine.dispose()


def seed(databases, **options) -> Seeded:
    url, prefix = databases.new()
    summary = seed_site(url, prefix=prefix, **{**SIZE, "seed": 7, **options})
    return Seeded(url, prefix, summary)


def checksums(seeded: Seeded) -> dict[str, str]:
    sums = {}
    engine = make_engine(seeded.url)
    with engine.connect() as connection:
        for table in site_tables(seeded.prefix, iomad=seeded.summary.iomad):
            digest = hashlib.sha256()
            for row in connection.execute(select(table).order_by(table.c.id)):
                digest.update(repr(tuple(row)).encode())
            sums[table.name.removeprefix(seeded.prefix)] = digest.hexdigest()
    engine.dispose()
    return sums


@pytest.fixture(scope="module")
def site(moodle_databases) -> Seeded:
    return seed(moodle_databases)


def test_same_seed_gives_identical_data(moodle_databases, site):
    first = checksums(site)
    second = checksums(seed(moodle_databases))
    third = checksums(seed(moodle_databases, seed=8))

    assert first == second
    assert first["user"] != third["user"]
    assert first["logstore_standard_log"] != third["logstore_standard_log"]


def test_summary_counts_match_the_database(site):
    engine = make_engine(site.url)
    with engine.connect() as connection:
        counted = {
            name: connection.scalar(select(func.count()).select_from(site.tables[name]))
            for name in site.summary.rows
        }
    engine.dispose()

    assert counted == dict(site.summary.rows)
    assert counted["user"] == SIZE["users"] + 2  # guest and admin
    assert counted["course"] == SIZE["courses"] + 1  # the site course
    assert counted["company"] == SIZE["companies"]
    # 60 users × 10 days × 4 per user-day, unless scheduled learning steps need more.
    assert counted["logstore_standard_log"] >= 60 * DAYS * 4


def test_fresh_install_conventions(site):
    config = {row.name: row.value for row in site.rows("config")}
    roles = [(row.id, row.shortname, row.archetype) for row in site.rows("role")]
    users = site.rows("user")
    contexts = site.rows("context")

    assert config["siteadmins"] == "2" and config["siteguest"] == "1"
    assert roles[:8] == [
        (1, "manager", "manager"),
        (2, "coursecreator", "coursecreator"),
        (3, "editingteacher", "editingteacher"),
        (4, "teacher", "teacher"),
        (5, "student", "student"),
        (6, "guest", "guest"),
        (7, "user", "user"),
        (8, "frontpage", "frontpage"),
    ]
    assert (users[0].id, users[0].username, users[1].id, users[1].username) == (
        1,
        "guest",
        2,
        "admin",
    )
    assert (contexts[0].id, contexts[0].contextlevel, contexts[0].path) == (1, 10, "/1")
    site_course = site.rows("course")[0]
    assert (site_course.id, site_course.format, site_course.category) == (1, "site", 0)


def test_rows_refer_to_rows_that_exist(site):
    ids = {name: {row.id for row in site.rows(name)} for name in ("enrol", "user", "course")}
    contexts = {(c.contextlevel, c.instanceid): c for c in site.rows("context")}
    context_ids = {c.id for c in contexts.values()}
    modules = site.rows("course_modules")

    assert all(ue.enrolid in ids["enrol"] for ue in site.rows("user_enrolments"))
    assert all(e.courseid in ids["course"] for e in site.rows("enrol"))
    assert all(ra.contextid in context_ids for ra in site.rows("role_assignments"))
    assert all(cc.userid in ids["user"] for cc in site.rows("course_completions"))
    for course_id in ids["course"]:
        assert (50, course_id) in contexts
    for cm in modules:
        course_context = contexts[(50, cm.course)]
        assert contexts[(70, cm.id)].path.startswith(course_context.path + "/")
    for user_id in ids["user"]:
        assert (30, user_id) in contexts
    if site.summary.scorm_layout == "attempt":
        attempts = {a.id for a in site.rows("scorm_attempt")}
        assert all(v.attemptid in attempts for v in site.rows("scorm_scoes_value"))


def test_every_company_has_a_manager_and_a_top_department(site):
    members = site.rows("company_users")
    departments = site.rows("department")
    contexts = [c for c in site.rows("context") if c.contextlevel == 13]

    for company in site.rows("company"):
        assert any(m.companyid == company.id and m.managertype == 1 for m in members)
        tops = [d for d in departments if d.company == company.id and d.parent == 0]
        assert len(tops) == 1
        assert any(c.instanceid == company.id and c.path.count("/") == 2 for c in contexts)
    assert any(m.managertype == 2 for m in members)
    companies_per_user: dict[int, set[int]] = {}
    for m in members:
        companies_per_user.setdefault(m.userid, set()).add(m.companyid)
    assert max(len(c) for c in companies_per_user.values()) == 2


def test_iomad_courses_licences_and_email_queue(site):
    iomad_courses = site.rows("iomad_courses")
    emails = site.rows("email")

    assert {c.shared for c in iomad_courses} == {0, 1, 2}
    assert site.rows("company_shared_courses")
    assert any(u.isusing == 1 for u in site.rows("companylicense_users"))
    assert {e.templatename for e in emails} == {"license_allocated", "user_create"}
    assert any(e.sent is None for e in emails) and any(e.sent for e in emails)


def test_passwords_verify_and_accounts_follow_moodle(site):
    users = site.rows("user")
    local = [u for u in users if u.auth in ("manual", "nologin", "email") and not u.deleted]

    assert all(u.password.startswith(("$6$rounds=10000$", "$2y$10$")) for u in local)
    assert any(u.password.startswith("$2y$10$") for u in local)
    for u in local:
        scheme = bcrypt if u.password.startswith("$2y$") else sha512_crypt
        assert scheme.verify(DEMO_PASSWORD, u.password), u.username
    assert {u.password for u in users if u.auth == "ldap"} == {"not cached"}
    assert sum(u.auth == "nologin" for u in users) == 1
    assert any(u.suspended for u in users)
    deleted = [u for u in users if u.deleted]
    assert deleted
    for u in deleted:
        email, _, when = u.username.rpartition(".")
        assert "@" in email and when.isdigit()
        assert len(u.email) == 32 and u.idnumber == ""


def test_demo_logins_can_log_in(site):
    users = {u.username: u for u in site.rows("user")}
    roles = [login.role for login in site.summary.logins]

    assert roles == ["admin"] + ["companymanager"] * SIZE["companies"] + ["teacher", "student"]
    for login in site.summary.logins:
        user = users[login.username]
        assert not (user.suspended or user.deleted) and user.auth == "manual"
        scheme = bcrypt if user.password.startswith("$2y$") else sha512_crypt
        assert scheme.verify(login.password, user.password)


def test_log_rows_are_filled_as_moodle_fills_them(site):
    logs = site.rows("logstore_standard_log")
    modules = {cm.id for cm in site.rows("course_modules")}

    for row in logs:
        assert row.eventname.startswith("\\")
        assert row.component == row.eventname.split("\\")[1]
        target, action = row.eventname.rsplit("\\", 1)[1].rsplit("_", 1)
        assert (row.target, row.action) == (target, action)
        assert row.crud in ("c", "r", "u", "d") and row.edulevel in (0, 1, 2)
        json.loads(row.other)
        if row.contextlevel in (10, 30):
            assert row.courseid == 0
        if row.contextlevel == 70:
            assert row.contextinstanceid in modules
        assert NOW - DAYS * 86_400 <= row.timecreated < NOW
    assert [row.timecreated for row in logs] == sorted(row.timecreated for row in logs)
    completed = [row for row in logs if row.eventname == "\\core\\event\\course_completed"]
    assert completed and all(row.relateduserid for row in completed)


def test_completions_spread_over_the_window(site):
    completions = site.rows("course_completions")
    done = [c.timecompleted for c in completions if c.timecompleted is not None]
    days = {(when - (NOW - DAYS * 86_400)) // 86_400 for when in done}

    assert any(c.timecompleted is None for c in completions)
    assert len({d for d in days if 0 <= d < DAYS}) >= DAYS // 2
    assert all(when < NOW for when in done)


def test_attempts_and_grades(site):
    attempts = site.rows("quiz_attempts")

    assert {"finished", "inprogress"} <= {a.state for a in attempts}
    assert all(a.sumgrades is None for a in attempts if a.state != "finished")
    assert any(a.preview == 1 for a in attempts)
    assert site.rows("quiz_grades") and site.rows("grade_grades")


def test_scorm_elements_of_both_versions(site):
    elements = {e.element for e in site.rows("scorm_element")}
    values = site.rows("scorm_scoes_value")

    assert {"cmi.core.lesson_status", "cmi.completion_status", "x.start.time"} <= elements
    assert any(v.value.startswith("PT") for v in values)


def test_old_scorm_layout_and_plain_moodle(moodle_databases):
    track = seed(moodle_databases, users=20, courses=2, companies=1, days=3, layout="track")
    plain = seed(moodle_databases, users=20, courses=2, days=3, iomad=False)

    features = []
    for seeded in (track, plain):
        source = MoodleSource(seeded.url, seeded.prefix)
        features.append(source.features())
        source.dispose()
    assert features == [SiteFeatures(True, "track", True), SiteFeatures(False, "attempt", True)]
    assert {row.element for row in track.rows("scorm_scoes_track")} >= {"x.start.time"}
    assert "company" not in plain.summary.rows
    assert [login.role for login in plain.summary.logins] == ["admin", "teacher", "student"]


def test_target_log_rows_is_met_exactly(moodle_databases):
    seeded = seed(moodle_databases, users=20, courses=2, companies=1, days=3, target_log_rows=5000)

    assert seeded.summary.log_rows == 5000


@pytest.mark.parametrize(
    "options",
    [{"users": 5}, {"courses": 0}, {"days": 0}, {"companies": 30}, {"layout": "new"}],
)
def test_impossible_sizes_are_refused(options):
    with pytest.raises(DemoSizeError):
        seed_site("sqlite://", **{**SIZE, **options})
