"""The "New email job" page: recipient sources counted against the rows this module inserts,
other companies' courses, cohorts and departments refused, CSV uploads good, bad and huge,
every problem of the form named at once (422) with every input kept."""

from __future__ import annotations

import html
import io
import json
import re

import pytest
from sqlalchemy import select

from common.mail.recipient_sources import MAX_CSV_BYTES
from common.models.access import AuditLog
from common.models.mail import CloudJob, CloudRecipient
from tests.web.jobs.conftest import job_counts, token

BROKEN = "<p>Hi {{firstname}</p> {{#license}}"


@pytest.fixture(scope="module")
def acme(composed_site) -> int:  # type: ignore[no-untyped-def]
    return composed_site.site.companies["A"]


def count(client, company: int, **form):  # type: ignore[no-untyped-def]
    data = {"csrf_token": token(client, company), **form}
    return client.post(f"/jobs/recipients/count?company={company}", data=data,
                       headers={"Accept": "application/json"})  # fmt: skip


def create(client, company: int, **form):  # type: ignore[no-untyped-def]
    data = {"csrf_token": token(client, company), "subject": "Hello {{firstname}}",
            "html": "<p>Hi {{firstname}}</p>", **form}  # fmt: skip
    return client.post(f"/jobs/create?company={company}", data=data,
                       content_type="multipart/form-data")  # fmt: skip


def emails(app, job_id: int) -> set[str]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        rows = session.scalars(select(CloudRecipient.email).where(CloudRecipient.jobid == job_id))
        return set(rows)


def test_the_page_offers_only_the_managers_own_courses_cohorts_and_departments(
    composed_site, signed_in_as, acme
):
    page = signed_in_as("mgr_a").get(f"/jobs/new?company={acme}")
    body = html.unescape(page.get_data(as_text=True))
    assert page.status_code == 200
    for offered in ("Fire Safety", "First Aid", "Shared Ethics", "Night shift", "Acme Sales North"):
        assert f">{offered}</option>" in body, offered
    for hidden in ("Forklift", "Bolt drivers"):
        assert hidden not in body, hidden
    assert 'value="mgr_a@example.com"' in body  # the test message goes to the viewer by default


def expected_people(site, names: list[str]) -> set[str]:  # type: ignore[no-untyped-def]
    return {f"{name}@example.com" for name in names}


SOURCES = {
    # source, choice, who (computed from the site's facts: active, in Acme, usable address)
    "course-fire": ("course", "Fire Safety", ["ana", "ben", "cara", "dan"]),  # not 'sus'
    "course-first-aid": ("course", "First Aid", ["ana", "ben"]),  # cara inactive, gone deleted
    "course-shared": ("course", "Shared Ethics", ["ana"]),  # Bolt's learners are not Acme's
    "cohort": ("cohort", "Night shift", ["ana", "ben"]),  # not 'sus', not Bolt's yuri
    "company": (
        "company",
        None,
        ["ana", "ben", "cara", "dan", "mgr_a", "multi", "dept_a", "mgr_a_in_b", "teacher_a"],
    ),  # fmt: skip
    "department-subtree": ("department", "Acme Sales", ["ana", "ben", "dept_a"]),
    "department": ("department", "Acme Ops", ["cara", "dan"]),  # not 'sus', not 'left'
}


@pytest.mark.parametrize("case", SOURCES)
def test_each_moodle_source_counts_and_sends_to_exactly_its_people(
    case, composed_site, compose_app, signed_in_as, acme
):
    site = composed_site.site
    kind, choice, names = SOURCES[case]
    ids = {"course": site.courses, "department": site.departments}
    form = {"source": kind}
    if kind == "cohort":
        form["cohort"] = str(composed_site.cohort)
    elif choice:
        form[kind] = str(ids[kind][choice])
    client = signed_in_as("mgr_a")
    counted = count(client, acme, **form)
    assert counted.status_code == 200, counted.get_data(as_text=True)
    skipped = 1 if case in ("company", "department-subtree") else 0  # 'noaddr'
    assert counted.get_json() == {
        **counted.get_json(),
        "count": len(names),
        "skipped": skipped,
        "duplicates": 0,
    }
    created = create(client, acme, **form)
    assert created.status_code == 302, created.get_data(as_text=True)
    job_id = int(created.headers["Location"].rsplit("=", 1)[1])
    assert emails(compose_app, job_id) == expected_people(site, names)


def test_the_chosen_groups_name_is_a_template_variable(
    composed_site, compose_app, signed_in_as, acme
):
    client = signed_in_as("mgr_a")
    course = composed_site.site.courses["First Aid"]
    created = create(client, acme, source="course", course=str(course),
                     html="<p>{{firstname}}: {{course}}</p>")  # fmt: skip
    job_id = int(created.headers["Location"].rsplit("=", 1)[1])
    with compose_app.extensions["manireports"].appdb.transaction() as session:
        data = session.scalars(select(CloudRecipient.recipient_data)
                               .where(CloudRecipient.jobid == job_id)).first()  # fmt: skip
    assert json.loads(data or "{}")["course"] == "First Aid"


def other_company_ids(composed_site) -> dict[str, str]:  # type: ignore[no-untyped-def]
    site = composed_site.site
    return {
        "course": str(site.courses["Forklift"]),
        "cohort": str(composed_site.bolt_cohort),
        "department": str(site.moodle.top_department(site.companies["B"])),
    }


@pytest.mark.parametrize("kind", ["course", "cohort", "department"])
def test_another_companys_course_cohort_or_department_is_refused_and_audited(
    kind, composed_site, compose_app, signed_in_as, acme
):
    client = signed_in_as("mgr_a")
    before = job_counts(compose_app)
    wanted = other_company_ids(composed_site)[kind]
    assert count(client, acme, source=kind, **{kind: wanted}).status_code == 403
    assert create(client, acme, source=kind, **{kind: wanted}).status_code == 403
    assert job_counts(compose_app) == before
    with compose_app.extensions["manireports"].appdb.transaction() as session:
        denials = session.scalars(select(AuditLog.details).where(
            AuditLog.action == "access_denied")).all()  # fmt: skip
    assert any(f"{kind} {wanted}" in (d or "") for d in denials)


def test_odd_ids_and_another_companys_page_are_refused(composed_site, signed_in_as, acme):
    client = signed_in_as("mgr_a")
    bolt = composed_site.site.companies["B"]
    assert signed_in_as("mgr_a").get(f"/jobs/new?company={bolt}").status_code == 403
    for odd in ("-1", "1e9", "abc", "99999999999999999999"):
        response = count(client, acme, source="course", course=odd)
        assert response.status_code in (400, 403), odd
    assert count(client, acme, source="course", course="").status_code == 422
    assert count(client, acme, source="nonsense").status_code == 422


CSV_GOOD = (
    "\ufeffE-mail;First name;Team\r\n"
    "ana@acme.example;Ana;Red\r\n"
    "\r\n"
    "bo@acme.example;Bo;Blue\r\n"
    "ANA@acme.example;Ana again;Red\r\n"
)


def upload(text: str | bytes, name: str = "people.csv"):  # type: ignore[no-untyped-def]
    data = text.encode() if isinstance(text, str) else text
    return (io.BytesIO(data), name)


def test_a_csv_with_a_header_gives_each_column_as_a_variable(compose_app, signed_in_as, acme):
    client = signed_in_as("mgr_a")
    counted = count(client, acme, source="csv", csv=upload(CSV_GOOD))
    assert counted.get_json()["count"] == 2 and counted.get_json()["duplicates"] == 1
    created = create(client, acme, source="csv", csv=upload(CSV_GOOD),
                     html="<p>{{first_name}} of team {{team}}</p>")  # fmt: skip
    assert created.status_code == 302
    job_id = int(created.headers["Location"].rsplit("=", 1)[1])
    with compose_app.extensions["manireports"].appdb.transaction() as session:
        rows = session.execute(select(CloudRecipient.email, CloudRecipient.recipient_data)
                               .where(CloudRecipient.jobid == job_id)).all()  # fmt: skip
    assert {r.email: json.loads(r.recipient_data) for r in rows} == {
        "ana@acme.example": {"first_name": "Ana", "team": "Red"},
        "bo@acme.example": {"first_name": "Bo", "team": "Blue"},
    }


def test_a_csv_without_header_reads_email_firstname_lastname(signed_in_as, acme):
    counted = count(signed_in_as("mgr_a"), acme, source="csv",
                    csv=upload("ana@acme.example,Ana,Learner\nbo@acme.example\n"))  # fmt: skip
    assert counted.get_json()["count"] == 2


def test_a_bad_csv_names_every_bad_line_by_number(compose_app, signed_in_as, acme):
    bad = "email,name\nana@acme.example,Ana\nnot-an-address,X\n,No address\n" + (
        "bo@acme.example,Bo,extra\n"
    )
    client = signed_in_as("mgr_a")
    before = job_counts(compose_app)
    counted = count(client, acme, source="csv", csv=upload(bad))
    reasons = [e["error"] for e in counted.get_json()["errors"]]
    assert counted.status_code == 422
    assert [r.split(":")[0] for r in reasons] == ["line 3", "line 4", "line 5"]
    assert "'not-an-address'" in reasons[0] and "3 cells" in reasons[2]
    assert create(client, acme, source="csv", csv=upload(bad)).status_code == 422
    assert job_counts(compose_app) == before


def test_huge_or_empty_or_binary_csv_files_are_refused_with_a_reason(signed_in_as, acme):
    client = signed_in_as("mgr_a")
    huge = b"a@acme.example\n" * (MAX_CSV_BYTES // 15 + 10)
    response = count(client, acme, source="csv", csv=upload(huge))
    assert response.status_code == 422 and "larger than 5 MB" in response.get_json()["error"]
    too_many = "".join(f"p{i}@acme.example\n" for i in range(50_001))
    response = count(client, acme, source="csv", csv=upload(too_many))
    assert response.status_code == 422 and "at most 50000" in response.get_json()["error"]
    assert count(client, acme, source="csv", csv=upload("")).status_code == 422
    binary = count(client, acme, source="csv", csv=upload(bytes(range(256)) * 4))
    assert binary.status_code == 422
    assert count(client, acme, source="csv").get_json()["error"] == "choose a CSV file"


def test_every_problem_is_named_at_once_and_every_input_kept(compose_app, signed_in_as, acme):
    client = signed_in_as("mgr_a")
    before = job_counts(compose_app)
    response = create(client, acme, subject="", html=BROKEN, text="Hi {{#x}}",
                      recipients="ana@acme.example\nnot-an-address", source="paste")  # fmt: skip
    body = html.unescape(response.get_data(as_text=True))
    said = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))
    said = html.unescape(said)
    assert response.status_code == 422
    assert "Please fix these 4 problems" in said and "subject : required" in said
    assert "html : line 1, column 7: the tag '{{firstname}</p>' is not closed" in said
    assert "recipients : line 2 ('not-an-address')" in said
    assert "text : line 1, column 4: the section 'x' was never closed" in said
    assert 'id="error-html-1"' in body and 'aria-describedby="error-html-1 "' in body
    assert f">{BROKEN}</textarea>" in body and ">Hi {{#x}}</textarea>" in body
    assert ">ana@acme.example\nnot-an-address</textarea>" in body
    assert 'value="paste" checked' in body and 'class="nav' in body  # in the styled layout
    assert job_counts(compose_app) == before


def test_a_refused_form_keeps_the_uploaded_file_and_the_chosen_source(
    composed_site, compose_app, signed_in_as, acme
):
    client = signed_in_as("mgr_a")
    refused = create(client, acme, subject="", source="csv", csv=upload(CSV_GOOD, "team.csv"))
    body = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 422 and 'value="csv" checked' in body
    assert "team.csv" in body and "bo@acme.example;Bo;Blue" in body
    # The file is not sent again: the kept text is used.
    kept = create(
        client, acme, source="csv", csv_text=CSV_GOOD.lstrip("\ufeff"), csv_name="team.csv"
    )
    assert kept.status_code == 302
    course = composed_site.site.courses["Fire Safety"]
    refused = create(client, acme, subject="", source="course", course=str(course))
    body = refused.get_data(as_text=True)
    assert f'value="{course}" selected' in body and 'value="course" checked' in body


def test_the_form_needs_csrf_and_the_capability(compose_app, signed_in_as, acme):
    client = signed_in_as("mgr_a")
    form = {"subject": "x", "html": "y", "recipients": "ana@acme.example"}
    assert client.post(f"/jobs/create?company={acme}", data=form).status_code == 400
    assert client.post(f"/jobs/recipients/count?company={acme}", data=form).status_code == 400
    assert signed_in_as("ana").get(f"/jobs/new?company={acme}").status_code == 403
    with compose_app.extensions["manireports"].appdb.transaction() as session:
        assert not session.scalars(select(CloudJob).where(CloudJob.subject_template == "x")).all()
