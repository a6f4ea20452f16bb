"""A site without IOMAD: no companies, plain Moodle role permissions; site password peppers."""

import pytest

from common.db import make_engine
from common.migrate import upgrade
from tests.factories.moodle import MoodleFactory, hash_password
from tests.support import make_settings
from tests.web.conftest import sign_in
from web.app import create_app


@pytest.fixture
def plain_site(moodle_url, tmp_path, nats_server):  # type: ignore[no-untyped-def]
    engine = make_engine(moodle_url)
    moodle = MoodleFactory(engine, iomad=False)
    courses = {name: moodle.course(fullname=name) for name in ("Algebra", "Biology")}
    teacher = moodle.user(username="teacher")
    moodle.enrol(teacher, courses["Algebra"], role="editingteacher")
    for n in range(3):
        learner = moodle.user(username=f"learner{n}")
        moodle.enrol(learner, courses["Algebra"])
        moodle.enrol(learner, courses["Biology"])
    # Moodle 4.3+ hashes password + pepper; the newest pepper is listed first in config.php.
    moodle.user(username="peppered", password_hash=hash_password("Secret-1" + "pep-new"))
    engine.dispose()
    settings = make_settings(tmp_path, MOODLE_DATABASE_URL=moodle_url, NATS_URL=nats_server.url,
                             MOODLE_PASSWORD_PEPPERS="pep-new,pep-old")  # fmt: skip
    upgrade(settings.database_url)
    app = create_app(settings)
    yield app
    app.extensions["manireports"].close()


def signed_in(app, username, password="Test-Password-1"):
    client = app.test_client()
    assert sign_in(client, username, password).status_code == 302
    return client


def test_teacher_sees_only_their_courses_and_no_company_selector(plain_site):
    client = signed_in(plain_site, "teacher")
    data = client.get("/reports/course_completion/data").get_json()
    assert [(r["course"], r["enrolled"]) for r in data["rows"]] == [("Algebra", 3)]
    assert 'id="company"' not in client.get("/dashboards/completion").get_data(as_text=True)


def test_admin_sees_every_course(plain_site):
    data = signed_in(plain_site, "admin").get("/reports/course_completion/data").get_json()
    assert [(r["course"], r["enrolled"]) for r in data["rows"]] == [("Algebra", 3), ("Biology", 3)]


def test_a_company_parameter_on_a_plain_site_changes_nothing(plain_site):
    client = signed_in(plain_site, "teacher")
    response = client.get("/reports/course_completion/data?company=1")
    assert response.status_code == 200
    data = response.get_json()
    assert [r["course"] for r in data["rows"]] == ["Algebra"]


def test_learners_cannot_open_the_completion_dashboard(plain_site):
    assert signed_in(plain_site, "learner0").get("/dashboards/completion").status_code == 403


def test_site_peppers_are_used_to_check_passwords(plain_site):
    assert sign_in(plain_site.test_client(), "peppered", "Secret-1").status_code == 302
    assert sign_in(plain_site.test_client(), "peppered", "Secret-2").status_code == 401


def test_without_the_pepper_setting_a_peppered_hash_does_not_verify():
    from common.access.passwords import verify_moodle_password

    stored = hash_password("Secret-1" + "pep-new")
    assert verify_moodle_password("Secret-1", stored, ("pep-old", "pep-new"))
    assert not verify_moodle_password("Secret-1", stored, ())
