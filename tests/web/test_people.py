"""The user and course pages: names linked, figures from the report registry, the viewer's
scope (one outside it is a 404 that names nothing), and the at-risk scores."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from common.models.analytics import RiskScore
from tests.factories.sites import Site


@pytest.fixture
def scored(app: Flask, site: Site) -> Flask:
    """Risk scores for Ana (Acme) and Yuri (Bolt), as the aggregator would have stored them."""
    rows = [("ana", "Fire Safety", 81, True), ("yuri", "Forklift", 77, True)]
    with app.extensions["manireports"].appdb.transaction() as db:
        for user, course, score, flagged in rows:
            factors = [
                {"rule": "max_days_since_login", "value": None, "threshold": 7, "points": 20},
                {"rule": "min_completion_pct", "value": 12.5, "threshold": 50, "points": 25},
            ]
            db.add(RiskScore(userid=site.users[user], courseid=site.courses[course], score=score,
                             flagged=flagged, factors=json.dumps(factors)))  # fmt: skip
    return app


def body(client, path: str, status: int = 200) -> str:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code)
    return response.get_data(as_text=True)


def test_admin_sees_a_learner_with_courses_linked(client_as, site, scored):
    html = body(client_as("admin"), f"/users/{site.users['ana']}")
    assert "<h1>Ana Learner</h1>" in html
    fire = site.courses["Fire Safety"]
    assert f'<a href="/courses/{fire}">Fire Safety</a>' in html
    for section in ("Course progress", "Learner engagement", "At-risk scores"):
        assert section in html, section
    assert ">81<" in html
    # Each factor by its rule's label, "never" for no login, with its threshold and points.
    assert "Days since the last login: <strong>never</strong>" in html
    assert "(threshold 7, +20)" in html
    assert "Activities completed (%): <strong>12.5</strong>" in html
    assert "max_days_since_login" not in html and "None" not in html
    assert "Yuri" not in html and "Forklift" not in html  # only Ana's rows


def test_course_page_lists_learners_linked_to_their_pages(client_as, site, scored):
    html = body(client_as("mgr_a"), f"/courses/{site.courses['Fire Safety']}")
    assert "<h1>Fire Safety</h1>" in html
    for name in ("ana", "ben", "cara", "dan"):
        assert f'<a href="/users/{site.users[name]}">{name.title()} Learner</a>' in html
    assert f"/reports/course_progress?course={site.courses['Fire Safety']}" in html
    assert ">81<" in html


@pytest.mark.parametrize(
    ("who", "user", "course"),
    [
        ("mgr_a", "yuri", "Forklift"),  # another company's learner and course
        ("dept_a", "cara", None),  # Acme, but another department
        ("teacher_a", "dan", "Fire Safety"),  # not in the course they teach
        ("ana", "ben", "Forklift"),  # a learner sees only themselves
        ("mgr_a_in_b", "yuri", "Forklift"),
    ],
)
def test_outside_the_scope_is_404_and_names_nothing(client_as, site, scored, who, user, course):
    client = client_as(who)
    html = body(client, f"/users/{site.users[user]}", 404)
    assert f"{user.title()} Learner" not in html
    if course:
        html = body(client, f"/courses/{site.courses[course]}", 404)
        assert f"<h1>{course}" not in html
    # The same answer as for an id that does not exist at all.
    assert body(client, "/users/987654321", 404).count("No user") == 1


def test_in_scope_for_narrower_roles(client_as, site, scored):
    assert "<h1>Ana Learner</h1>" in body(client_as("dept_a"), f"/users/{site.users['ana']}")
    teacher = client_as("teacher_a")
    html = body(teacher, f"/users/{site.users['ben']}")
    assert "First Aid" in html and "Fire Safety" not in html  # only the course they teach
    html = body(teacher, f"/courses/{site.courses['First Aid']}")
    assert "Ben Learner" in html and "Ana Learner" in html


def test_a_learner_sees_their_own_page_and_course_alone(client_as, site, scored):
    ana = client_as("ana")
    html = body(ana, f"/users/{site.users['ana']}")
    assert "<h1>Ana Learner</h1>" in html and ">81<" in html
    html = body(ana, f"/courses/{site.courses['Fire Safety']}")
    assert "Ana Learner" in html
    assert not any(f"{n} Learner" in html for n in ("Ben", "Cara", "Dan"))


def test_own_page_opens_for_a_teacher_and_is_linked_from_the_header(client_as, site):
    teacher = client_as("teacher_solo")
    own = f"/users/{site.users['teacher_solo']}"
    assert f'href="{own}"' in body(teacher, "/dashboards/")
    assert "<h1>Sol Teach</h1>" in body(teacher, own)


@pytest.mark.parametrize("path", ["/users/0", "/users/-1", "/users/abc", "/users/" + "9" * 40,
                                  "/courses/1", "/courses/0"])  # fmt: skip
def test_odd_ids_are_404(client_as, path):
    assert client_as("admin").get(path).status_code == 404


def test_signed_out_is_sent_to_sign_in(app, site):
    response = app.test_client().get(f"/users/{site.users['ana']}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
