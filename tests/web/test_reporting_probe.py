"""The reporting surface attacked from outside: filters naming another company's objects,
learners and teachers on every report, odd input on the new parameters, names that are
markup or spreadsheet formulas, and the size of exports.

Finding R1: a filter on another company's cohort (`?cohort=<Bolt's>`) printed that cohort's
name in the applied-filter chips (data JSON, dashboards, the PDF and the XLSX "About" sheet):
cohorts are site-wide rows, so reading the name "through the scope" filtered nothing. A
cohort's name is now shown only when it has a member the viewer may see (the filter bar's
own rule); otherwise its id.
"""

from __future__ import annotations

import csv
import io
import time

import pytest
from openpyxl import load_workbook

from common.reports import registered_reports
from common.reports.export import PDF_MAX_ROWS
from tests.factories.sites import DAY, NOW
from tests.web.other_company import BOLT_MARKERS
from tests.web.test_report_page import add_cohort
from tests.web.test_route_walker import readable_text

FORMATS = ("csv", "xlsx", "pdf")
OTHER_LEARNERS = ("Ben Learner", "Cara Learner", "Dan Learner", "Yuri Learner", "Zoe Learner",
                  "Xena Learner")  # fmt: skip


def report_names() -> list[str]:
    return sorted(r.type_name for r in registered_reports())


def leaks(text: str, markers: tuple[str, ...]) -> list[str]:
    return [m for m in markers if m in text]


# -- 1. cross-tenant through filters ------------------------------------------------------------


@pytest.fixture
def bolt_cohort(site) -> int:  # type: ignore[no-untyped-def]
    return add_cohort(site, "Bolt Drivers", ["yuri", "zoe", "xena"])


def hostile_filters(site, cohort: int) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    forklift = str(site.courses["Forklift"])
    return [
        {"course": forklift},
        {"cohort": str(cohort)},
        {"q": "Yuri"},
        {"q": "bolt"},
        {"course": forklift, "cohort": str(cohort), "q": "Xena", "band": "0"},
        {"course": forklift, "days": "90", "from": "2000-01-01", "to": "2030-01-01"},
    ]


@pytest.mark.parametrize("name", report_names())
def test_a_manager_filtering_on_another_companys_objects_sees_none_of_them(
    site, client_as, bolt_cohort, name
):
    client = client_as("mgr_a")
    markers = (*BOLT_MARKERS, "Bolt Drivers")
    problems = []
    for args in hostile_filters(site, bolt_cohort):
        urls = [f"/reports/{name}/data", f"/reports/{name}"] + [
            f"/reports/{name}/export.{fmt}" for fmt in FORMATS
        ]
        for url in urls:
            response = client.get(url, query_string=args)
            if name == "company_summary":  # site admins only
                assert response.status_code in (403, 404), url
                continue
            assert response.status_code == 200, (url, args, response.get_data()[:300])
            found = leaks(readable_text(response), markers)
            if found:
                problems.append((url, args, found))
    assert not problems


def test_dashboards_filtered_on_another_companys_objects_leak_nothing(site, client_as, bolt_cohort):
    markers = (*BOLT_MARKERS, "Bolt Drivers")
    for username, role in (("mgr_a", "manager"), ("teacher_a", "teacher"), ("ana", "student")):
        client = client_as(username)
        for args in hostile_filters(site, bolt_cohort):
            for url in (f"/dashboards/{role}/data", f"/dashboards/{role}"):
                response = client.get(url, query_string=args)
                assert response.status_code == 200, (url, args)
                assert not leaks(response.get_data(as_text=True), markers), (username, url, args)


def test_the_chip_still_names_a_cohort_of_ones_own(site, client_as, bolt_cohort):
    mine = add_cohort(site, "Acme Night Shift", ["ana", "ben"])
    data = client_as("mgr_a").get(f"/reports/course_progress/data?cohort={mine}").get_json()
    assert {"label": "Cohort", "value": "Acme Night Shift"} in data["filters"]
    theirs = client_as("mgr_a").get(f"/reports/course_progress/data?cohort={bolt_cohort}")
    assert {"label": "Cohort", "value": f"#{bolt_cohort}"} in theirs.get_json()["filters"]
    # A site admin sees every cohort's name.
    admin = client_as("admin").get(f"/reports/course_progress/data?cohort={bolt_cohort}")
    assert {"label": "Cohort", "value": "Bolt Drivers"} in admin.get_json()["filters"]


def runnable_by(client, names: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    return [n for n in names if client.get(f"/reports/{n}/data").status_code == 200]


def test_a_learner_sees_only_herself_on_every_report_and_export(site, client_as, bolt_cohort):
    client = client_as("ana")
    mine = runnable_by(client, report_names())
    assert "course_progress" in mine and "user_engagement" in mine
    for name in mine:
        for args in ({}, {"q": "Learner"}, {"q": "ben"}, {"cohort": str(bolt_cohort)},
                     {"course": str(site.courses["Forklift"])}):  # fmt: skip
            for url in [f"/reports/{name}/data"] + [
                f"/reports/{name}/export.{fmt}" for fmt in FORMATS
            ]:
                response = client.get(url, query_string=args)
                assert response.status_code == 200, (url, args)
                text = readable_text(response)
                assert not leaks(text, OTHER_LEARNERS), (url, args)
        data = client.get(f"/reports/{name}/data?q=Learner").get_json()
        for row in data["rows"]:
            assert row.get("learner") in (None, "Ana Learner"), (name, row)
    for name in set(report_names()) - set(mine):
        assert client.get(f"/reports/{name}/data").status_code in (403, 404)
        assert client.get(f"/reports/{name}/export.csv").status_code in (403, 404)


def test_a_teacher_sees_only_the_courses_they_teach(site, client_as):
    client = client_as("teacher_a")
    others = ("Fire Safety", "Forklift", "Shared Ethics", "Induction", "Dan Learner",
              "Yuri Learner", "Zoe Learner", "Xena Learner")  # fmt: skip
    mine = runnable_by(client, report_names())
    assert "course_completion" in mine
    for name in mine:
        for args in ({}, {"course": str(site.courses["Fire Safety"])}, {"q": "Dan"}):
            for url in [f"/reports/{name}/data"] + [
                f"/reports/{name}/export.{fmt}" for fmt in FORMATS
            ]:
                response = client.get(url, query_string=args)
                assert response.status_code == 200, (url, args)
                assert not leaks(readable_text(response), others), (url, args)


# -- 2. odd input -------------------------------------------------------------------------------

ODD = [
    ("page=0", "page"),
    ("page=-1", "page"),
    ("page=1e9", "page"),
    ("page=9999999999", "page"),
    ("page_size=0", "page_size"),
    ("page_size=-1", "page_size"),
    ("page_size=1e9", "page_size"),
    ("page_size=%C2%B2", "page_size"),
    ("page_size=%EF%BC%95", "page_size"),  # a fullwidth digit
    ("sort=course%3BDROP+TABLE+mdl_user", "sort"),
    ("sort=1+OR+1%3D1", "sort"),
    ("sort=course%00", "sort"),
    ("dir=desc%3B--", "dir"),
    ("dir=up", "dir"),
    ("from=2026-02-30", "from"),
    ("from=2026-2-3", "from"),
    ("from=%00%00%00%00%00%00%00%00%00%00", "from"),
    ("to=2026-01-01&from=2026-02-01", "to"),
    ("course=1%00", "course"),
    ("course=%D9%A3", "course"),  # an Arabic-Indic digit
    ("course=-1", "course"),
    ("course=99999999999999999999999", "course"),
    ("cohort=abc", "cohort"),
    ("band=33", "band"),
    ("days=7", "days"),
    ("q=" + "x" * 10_000, "q"),
]


def params_of(name: str) -> set[str]:
    report = next(r for r in registered_reports() if r.type_name == name)
    return {p.name for p in report.params} | {"page", "page_size", "sort", "dir"}


@pytest.mark.parametrize(("query", "field"), ODD)
def test_odd_input_is_a_400_naming_the_field(client_as, query, field):
    client = client_as("admin")
    for name in report_names():
        if field not in params_of(name):
            continue
        for url in (f"/reports/{name}/data", f"/reports/{name}/export.csv", f"/reports/{name}"):
            response = client.get(f"{url}?{query}")
            assert response.status_code == 400, (url, query, response.status_code)
            if url.endswith("/data"):
                assert response.is_json and response.get_json().get("field") == field, (
                    url, query, response.get_json())  # fmt: skip


@pytest.mark.parametrize(
    "query",
    ["page=99999999", "page=99999999&page_size=500", "q=%25", "q=_", "q=%5C", "q=%21",
     "q=%27%22%3B--", "q=%00", "q=%F0%9F%98%80", "q=%C3%A9%E4%B8%AD", "course=1&course=2",
     "parts=", "parts=rows&parts=all", "parts=%00",
     "from=0001-01-01&to=9999-12-31", "q=%20%20%20", "company="],
)  # fmt: skip
def test_odd_but_valid_input_answers_200(client_as, query):
    for username in ("admin", "mgr_a", "ana"):
        client = client_as(username)
        for name in runnable_by(client, report_names()):
            for url in (f"/reports/{name}/data", f"/reports/{name}/export.csv"):
                response = client.get(f"{url}?{query}")
                assert response.status_code == 200, (username, url, query, response.status_code,
                                                      response.get_data()[:300])  # fmt: skip
        for role in ("admin", "manager", "student"):
            response = client.get(f"/dashboards/{role}/data?{query}")
            assert response.status_code in (200, 403), (username, role, query)


def test_a_search_for_a_wildcard_matches_only_that_character(client_as):
    client = client_as("mgr_a")
    for name in ("course_progress", "user_engagement"):
        everyone = client.get(f"/reports/{name}/data").get_json()["pagination"]["total"]
        assert everyone > 0
        for wildcard in ("%25", "_", "%25%25", "__"):
            found = client.get(f"/reports/{name}/data?q={wildcard}").get_json()
            assert found["pagination"]["total"] == 0, (name, wildcard)


@pytest.mark.parametrize(
    "path",
    ["/reports/course_progress/export.XLSX", "/reports/course_progress/export.csv%00",
     "/reports/course_progress/export.csv%2500", "/reports/course_progress/export.",
     "/reports/course_progress/export.csv.pdf", "/reports/course_progress/export.exe",
     "/reports/..%2f..%2fetc%2fpasswd/data", "/reports/%2e%2e/data",
     "/reports/course_progress%00/data", "/reports/Course_Progress/data",
     "/reports/__init__/data", "/reports/base/data", "/reports/course_progress /data",
     "/reports/" + "x" * 5000 + "/data", "/dashboards/..%2fadmin/data", "/dashboards/ADMIN/data",
     "/api/v1/reports/..%2fcourse_progress"],
)  # fmt: skip
def test_unknown_names_and_formats_are_404(client_as, path):
    response = client_as("admin").get(path)
    assert response.status_code in (401, 404), (path, response.status_code)


# -- 3. output injection ------------------------------------------------------------------------

PAYLOADS = ("<script>alert(1)</script>", "{{7*7}}", "=cmd|' /C calc'!A0", "+1", "-1",
            "@SUM(1)", "\t=1", "\r=1", '"><img src=x onerror=alert(1)>',
            "<img src='http://evil.example/x.png'>", "L" * 254)  # fmt: skip


@pytest.fixture
def hostile_site(site):  # type: ignore[no-untyped-def]
    """Acme courses and learners named with each payload, enrolled together."""
    moodle = site.moodle
    acme = site.companies["A"]
    named: list[tuple[int, int]] = []
    for i, payload in enumerate(PAYLOADS):
        course = moodle.course(fullname=payload, shortname=f"hostile{i}")
        moodle.company_course(acme, course)
        user = moodle.user(username=f"hostile{i}", firstname=payload[:100], lastname="")
        moodle.company_user(acme, user)
        moodle.enrol(user, course, timestart=NOW - 300 * DAY)
        named.append((course, user))
    return named


def test_names_are_escaped_in_pages_and_kept_literal_in_json(client_as, hostile_site):
    client = client_as("mgr_a")
    for name in ("course_completion", "course_progress", "user_engagement"):
        page = client.get(f"/reports/{name}?course={hostile_site[0][0]}").get_data(as_text=True)
        assert "<script>alert(1)</script>" not in page
        assert "<img src=" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "{{7*7}}" in page  # the course select's option, as written: not evaluated
        data = client.get(f"/reports/{name}/data?page_size=500").get_json()
        text = repr(data["rows"])
        assert "<script>alert(1)</script>" in text or name == "user_engagement"
        assert "{{7*7}}" in text or name == "user_engagement"
    dashboard = client.get("/dashboards/manager").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in dashboard


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def test_formulas_are_neutralised_in_csv_and_xlsx_and_numbers_stay_numbers(client_as, hostile_site):
    client = client_as("mgr_a")
    dangerous = ("=", "+", "-", "@", "\t", "\r")
    for name in ("course_completion", "course_progress"):
        rows = csv_rows(client.get(f"/reports/{name}/export.csv").get_data())
        texts = [cell for row in rows for cell in row]
        for payload in PAYLOADS[2:8]:
            assert payload not in texts, (name, payload)
            assert "'" + payload in texts, (name, payload)
        book = load_workbook(io.BytesIO(client.get(f"/reports/{name}/export.xlsx").get_data()))
        sheet = book["Report"]
        header = [c.value for c in sheet[1]]
        for row in sheet.iter_rows(min_row=2, values_only=True):
            for key, value in zip(header, row, strict=True):
                if isinstance(value, str):
                    assert not value.startswith(dangerous), (name, key, value)
                    assert not value.startswith("=")
        kinds = {c.column_letter: c.data_type for c in sheet[2]}
        assert "f" not in kinds.values()
        enrolled = header.index("Enrolled") if "Enrolled" in header else None
        if enrolled is not None:
            assert all(
                isinstance(r[enrolled], int) for r in sheet.iter_rows(min_row=2, values_only=True)
            )
    # The cells that are figures stay numbers: a negative one is not made text.
    from datetime import UTC, datetime

    from common.reports.base import Column
    from common.reports.export import ExportDocument, write_csv, write_xlsx

    doc = ExportDocument("T", (Column("name", "Name"), Column("n", "N", "int"),
                               Column("f", "F", "float")), (), None,
                         datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    rows = [{"name": "-1", "n": -1, "f": -2.5}]
    assert csv_rows(b"".join(write_csv(doc, rows)))[1] == ["'-1", "-1", "-2.5"]
    cells = list(load_workbook(io.BytesIO(b"".join(write_xlsx(doc, rows))))["Report"]
                 .iter_rows(min_row=2, values_only=True))[0]  # fmt: skip
    assert cells == ("'-1", -1, -2.5)


def test_the_pdf_prints_names_literally_and_fetches_nothing(client_as, hostile_site, monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the PDF export fetched a URL")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    client = client_as("mgr_a")
    response = client.get("/reports/course_progress/export.pdf?page_size=500")
    assert response.status_code == 200
    text = readable_text(response)
    assert "<script>alert(1)</script>" in text
    assert "'=cmd" in text


# -- 4. resource abuse ---------------------------------------------------------------------------


def test_exports_stream(client_as):
    client = client_as("mgr_a")
    for fmt in FORMATS:
        response = client.get(f"/reports/course_progress/export.{fmt}")
        assert response.is_streamed, fmt
        assert response.headers.get("Content-Length") is None, fmt
        response.close()


def test_a_pdf_of_a_big_report_is_capped_and_bounded(app, site, client_as):
    """PDF_MAX_ROWS + 300 learner rows: the PDF lays out the cap and counts the rest."""
    if not site.url.startswith("sqlite"):
        pytest.skip("the cap is the same on MariaDB; building 2,300 learners there is slow")
    moodle = site.moodle
    course = site.courses["Fire Safety"]
    extra = PDF_MAX_ROWS + 300
    for i in range(extra):
        user = moodle.user(username=f"bulk{i}", firstname=f"Bulk{i}", lastname="Learner")
        moodle.company_user(site.companies["A"], user)
        moodle.enrol(user, course, timestart=NOW - 300 * DAY)
    client = client_as("mgr_a")
    started = time.monotonic()
    response = client.get(f"/reports/course_progress/export.pdf?course={course}")
    data = response.get_data()
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and data.startswith(b"%PDF")
    assert elapsed < 120, elapsed
    text = readable_text(response)
    assert f"First {PDF_MAX_ROWS:,} of" in text
