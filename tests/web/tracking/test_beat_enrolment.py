"""A heartbeat token counts only for its user's own courses: an active enrolment in the beat's
course, and an activity of that course. Anything else is 403 naming the field, and not stored."""

import json

import pytest

from common.analytics.beat_scope import BeatScope
from common.moodle import MoodleSource
from tests.factories.sites import DAY, NOW
from tests.web.tracking.conftest import stored_beats

_ids = iter(range(1, 10_000))


def post_beat(client, token, course, cm=0):
    body = {"token": token, "course": course, "cm": cm, "id": f"beat-{next(_ids):05d}"}
    return client.post("/tracking/beat", data=json.dumps(body), content_type="text/plain")


def token_for(app, user_id):
    from web.tracking.routes import tracking

    with app.test_request_context():
        return tracking().tokens.issue(user_id, NOW)[0]


def refused_field(response):
    assert response.status_code == 403, response.get_data(as_text=True)
    return response.get_json()["field"]


def test_beats_only_for_courses_the_user_is_actively_enrolled_in(app, site, nats_server):
    client = app.test_client()
    ana = token_for(app, site.users["ana"])
    assert post_beat(client, ana, site.courses["Fire Safety"]).status_code == 204
    assert post_beat(client, ana, site.courses["Shared Ethics"]).status_code == 204
    # Another company's course, a course that does not exist, the site's front page.
    assert refused_field(post_beat(client, ana, site.courses["Forklift"])) == "course"
    assert refused_field(post_beat(client, ana, 987_654)) == "course"
    assert refused_field(post_beat(client, ana, 1)) == "course"
    # A course of ana's own company she is not enrolled in.
    other = site.moodle.course(fullname="Unenrolled")
    site.moodle.company_course(site.companies["A"], other)
    assert refused_field(post_beat(client, ana, other)) == "course"
    response = post_beat(client, ana, site.courses["Forklift"])
    assert "not enrolled" in response.get_json()["error"]
    assert len(stored_beats(nats_server.url, expect=2)) == 2


@pytest.mark.parametrize(
    ("case", "enrolment"),
    [
        ("suspended enrolment", {"status": 1}),
        ("ended", {"timestart": NOW - 300 * DAY, "timeend": NOW - DAY}),
        ("not started", {"timestart": NOW + DAY}),
    ],
)
def test_inactive_enrolments_do_not_count(app, site, case, enrolment):
    learner = site.moodle.user(username=f"learner-{case.replace(' ', '-')}")
    site.moodle.enrol(learner, site.courses["First Aid"], **enrolment)
    response = post_beat(app.test_client(), token_for(app, learner), site.courses["First Aid"])
    assert refused_field(response) == "course", case


def test_a_disabled_enrolment_method_does_not_count(app, site):
    learner = site.moodle.user(username="self-enrolled")
    site.moodle.enrol(learner, site.courses["First Aid"], method="self",
                      timestart=NOW - DAY)  # fmt: skip
    e = site.moodle.tables.enrol
    with site.moodle.engine.begin() as conn:
        conn.execute(e.update().where(e.c.enrol == "self").values(status=1))
    response = post_beat(app.test_client(), token_for(app, learner), site.courses["First Aid"])
    assert refused_field(response) == "course"


def test_suspended_and_deleted_users_tokens_count_for_nothing(app, site):
    suspended, deleted = token_for(app, site.users["ben"]), token_for(app, site.users["dan"])
    site.moodle._update("user", site.users["ben"], suspended=1)
    site.moodle.delete_user(site.users["dan"])
    client = app.test_client()
    assert refused_field(post_beat(client, suspended, site.courses["Fire Safety"])) == "course"
    assert refused_field(post_beat(client, deleted, site.courses["Fire Safety"])) == "course"


def test_the_activity_must_belong_to_the_course(app, site, nats_server):
    client = app.test_client()
    ana = token_for(app, site.users["ana"])
    fire, aid = site.courses["Fire Safety"], site.courses["First Aid"]
    fire_page = site.moodle.module(fire).cm_id
    aid_page = site.moodle.module(aid).cm_id
    assert post_beat(client, ana, fire, fire_page).status_code == 204
    response = post_beat(client, ana, fire, aid_page)  # ana is enrolled in both, even
    assert refused_field(response) == "cm"
    assert "not in course" in response.get_json()["error"]
    assert refused_field(post_beat(client, ana, fire, 987_654)) == "cm"
    assert [b["m"] for b in stored_beats(nats_server.url, expect=1)] == [fire_page]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_answers_are_cached_for_a_minute_and_the_cache_is_bounded(site):
    source = MoodleSource(site.url)
    clock = Clock()
    scope = BeatScope(source, ttl_s=60, max_entries=3)
    scope._courses.clock = scope._modules.clock = clock
    fire = site.courses["Fire Safety"]
    try:
        assert scope.refusal(site.users["ben"], fire, 0, NOW) is None
        ue = site.moodle.tables.user_enrolments
        with site.moodle.engine.begin() as conn:
            conn.execute(ue.update().where(ue.c.userid == site.users["ben"]).values(status=1))
        assert scope.refusal(site.users["ben"], fire, 0, NOW) is None  # from the cache
        clock.now = 61
        assert scope.refusal(site.users["ben"], fire, 0, NOW) == "course"  # asked again
        for name in ("ana", "cara", "dan", "yuri", "zoe"):
            scope.refusal(site.users[name], fire, 0, NOW)
        assert len(scope._courses) == 3
    finally:
        source.dispose()
