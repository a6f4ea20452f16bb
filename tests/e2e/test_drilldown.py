"""In a real browser: filters, chips, drill-down, sort, paging and the URL as the view's state.

The report page drills on a bar chart of a report registered for this module only (course
completion, one bar per course, `drill: {param: course}`), so the test does not depend on
which detail reports this site has; the dashboard test follows whatever its tables link to.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from common.reports import PageRequest, ReportData, register
from common.reports import base as reports_base
from common.reports.course_completion import CourseCompletionReport

REPORT = "e2e_completion_by_course"


class CompletionByCourse(CourseCompletionReport):
    """Course completion with a bar per course that drills to the course."""

    type_name = REPORT
    title = "Completion by course"

    def run(self, ctx: Any, params: Any) -> ReportData:
        data = super().run(ctx, params)
        rows, _ = data.rows.page(PageRequest(page_size=500, sort="course"), self.row_key)
        chart = {
            "type": "bar",
            "labels": [r["course"] for r in rows],
            "series": [{"label": "Completion %", "data": [r["completion_pct"] for r in rows]}],
            "drill": {"param": "course", "values": [r["course_id"] for r in rows]},
        }
        return ReportData(rows=data.rows, chart=lambda: chart, kpis=data.kpis)


@pytest.fixture
def drill_report() -> Iterator[str]:
    register(CompletionByCourse)
    yield REPORT
    reports_base._REGISTRY.pop(REPORT, None)


def login(page, base, role, logins):  # type: ignore[no-untyped-def]
    who = next(login for login in logins if login.role == role)
    page.goto(f"{base}/login")
    page.fill("#username", who.username)
    page.fill("#password", who.password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def query(page) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    return parse_qs(urlsplit(page.url).query)


def loaded(page, view: str, state: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until the view shows the data of exactly this query string."""
    page.wait_for_selector(f"#{view}[data-loaded='{state}']")


def first_column(page, table: str = "#report-table") -> list[str]:  # type: ignore[no-untyped-def]
    return page.locator(f"{table} tbody tr td:first-child").all_inner_texts()


def chips(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.strip() for c in page.locator("#chips .chip span").all_inner_texts()]


def click_bar(page, canvas: str, index: int) -> str:  # type: ignore[no-untyped-def]
    """Click bar `index` of the chart on `canvas` where Chart.js drew it; its label."""
    page.locator(canvas).scroll_into_view_if_needed()
    spot = page.evaluate(
        """([selector, i]) => {
            const canvas = document.querySelector(selector);
            const chart = Chart.getChart(canvas);
            const bar = chart.getDatasetMeta(0).data[i];
            const area = chart.chartArea;
            return {x: bar.x, y: (area.top + area.bottom) / 2, label: chart.data.labels[i]};
        }""",
        [canvas, index],
    )
    box = page.locator(canvas).bounding_box()
    page.mouse.click(box["x"] + spot["x"], box["y"] + spot["y"])
    return str(spot["label"])


def test_filter_drill_chip_and_back(live_server, browser, demo_site, drill_report):
    _, logins = demo_site
    page = browser.new_page()
    login(page, live_server, "companymanager", logins)
    page.goto(f"{live_server}/reports/{drill_report}")
    loaded(page, "report-view", "")
    assert not page.is_visible("#loading"), "the loading state did not clear"
    assert not page.is_visible("#empty")
    every_course = first_column(page)
    assert len(every_course) > 2
    assert not any(c.startswith("Course") for c in chips(page))
    page.evaluate("window.__sameDocument = true")

    # A filter: the URL holds it, a chip names it, the table reloads in place.
    page.select_option("#filter-days", "90")
    loaded(page, "report-view", "days=90")
    assert query(page) == {"days": ["90"]}
    assert "Date range: Last 90 days" in chips(page)
    assert first_column(page) == every_course

    # A bar drills to its course: the filtered rows, the course by name in a chip.
    index = len(every_course) // 2
    label = click_bar(page, "#report-chart", index)
    page.wait_for_url(re.compile(r"[?&]course=\d+"))
    course_id = query(page)["course"][0]
    loaded(page, "report-view", f"days=90&course={course_id}")
    assert first_column(page) == [label]
    assert f"Course: {label}" in chips(page)
    assert page.input_value("#filter-course") == course_id
    assert page.evaluate("window.__sameDocument") is True, "the drill reloaded the page"

    # Removing the chip drops the filter (a new history entry).
    page.click("#chips button[aria-label='Remove filter Course']")
    loaded(page, "report-view", "days=90")
    assert first_column(page) == every_course
    assert not any(c.startswith("Course") for c in chips(page))

    # Back: the drilled view again, then the filter before it; the same document throughout.
    page.go_back()
    loaded(page, "report-view", f"days=90&course={course_id}")
    assert query(page) == {"days": ["90"], "course": [course_id]}
    assert first_column(page) == [label]
    assert page.input_value("#filter-course") == course_id
    page.go_back()
    loaded(page, "report-view", "days=90")
    assert query(page) == {"days": ["90"]}
    assert first_column(page) == every_course
    assert page.input_value("#filter-course") == ""
    assert page.input_value("#filter-days") == "90"
    page.go_back()
    loaded(page, "report-view", "")
    assert page.input_value("#filter-days") == "30"
    assert page.evaluate("window.__sameDocument") is True

    # A shared link reproduces the drilled view.
    shared = browser.new_page()
    login(shared, live_server, "companymanager", logins)
    shared.goto(f"{live_server}/reports/{drill_report}?days=90&course={course_id}")
    loaded(shared, "report-view", f"days=90&course={course_id}")
    assert first_column(shared) == [label]
    assert f"Course: {label}" in chips(shared)
    shared.close()
    page.close()


def test_sort_paging_and_exports_follow_the_view(live_server, browser, demo_site, drill_report):
    _, logins = demo_site
    page = browser.new_page()
    login(page, live_server, "admin", logins)
    page.goto(f"{live_server}/reports/{drill_report}?page_size=3")
    loaded(page, "report-view", "page_size=3")
    total = int(re.search(r"of (\d+)", page.inner_text("#page-range")).group(1))
    assert page.inner_text("#page-range") == f"Rows 1–3 of {total}"
    assert page.is_disabled("#page-prev")
    first_page = first_column(page)

    kpis = page.inner_text("#kpis")
    with page.expect_request(lambda r: "/data?" in r.url) as asked:
        page.click("#page-next")
    loaded(page, "report-view", "page_size=3&page=2")
    assert page.inner_text("#page-range") == f"Rows 4–6 of {total}"
    assert not set(first_column(page)) & set(first_page)
    # Paging the same filters fetches the rows alone and keeps the figures it has.
    assert parse_qs(urlsplit(asked.value.url).query)["parts"] == ["rows"]
    assert page.inner_text("#kpis") == kpis and page.is_visible("#chart-card")

    header = page.locator("#report-table th", has_text="Completion %")
    header.locator("button").click()
    loaded(page, "report-view", "page_size=3&sort=completion_pct&dir=asc")
    assert header.get_attribute("aria-sort") == "ascending"
    ascending = [float(v.rstrip(" %")) for v in page.locator(
        "#report-table tbody tr td:nth-child(4)").all_inner_texts()]  # fmt: skip
    assert ascending == sorted(ascending)
    header.locator("button").click()
    loaded(page, "report-view", "page_size=3&sort=completion_pct&dir=desc")
    assert header.get_attribute("aria-sort") == "descending"

    # Exports carry the filters and the sort, never the page.
    for fmt in page.locator("a[data-export]").all():
        href = fmt.get_attribute("href")
        assert parse_qs(urlsplit(href).query) == {"sort": ["completion_pct"], "dir": ["desc"]}

    page.select_option("#page-size", "25")
    loaded(page, "report-view", "page_size=25&sort=completion_pct&dir=desc")
    assert page.inner_text("#page-range") == f"Rows 1–{total} of {total}"
    assert page.is_disabled("#page-next")

    # No rows: the empty state says so, in place of an empty table.
    page.goto(f"{live_server}/reports/{drill_report}?course=999999")
    loaded(page, "report-view", "course=999999")
    assert page.is_visible("#empty") and not page.is_visible("#report-table")
    assert page.inner_text("#empty") == "No rows match these filters."
    assert page.inner_text("#page-range") == "No rows"
    page.close()


def test_dashboard_filters_in_place_and_drills_into_a_report(live_server, browser, demo_site):
    _, logins = demo_site
    page = browser.new_page()
    login(page, live_server, "companymanager", logins)
    page.goto(f"{live_server}/dashboards/manager")
    loaded(page, "dashboard-view", "")
    assert page.locator("[data-widget='completion_kpis'] .kpi").count() > 0
    courses = page.locator("[data-widget='courses'] tbody tr td:first-child a")
    assert courses.count() > 1
    page.evaluate("window.__sameDocument = true")

    options = page.locator("#filter-course option").all()
    course_id, course_name = options[1].get_attribute("value"), options[1].inner_text()
    page.select_option("#filter-course", course_id)
    loaded(page, "dashboard-view", f"course={course_id}")
    assert page.evaluate("window.__sameDocument") is True
    assert f"Course: {course_name}" in chips(page)
    assert page.locator("[data-widget='courses'] tbody tr td:first-child").all_inner_texts() == [
        course_name
    ]
    full = page.locator("[data-widget='courses'] a.more").get_attribute("href")
    assert parse_qs(urlsplit(full).query)["course"] == [course_id]

    # A course cell drills into the report behind it, filtered to that course.
    page.locator("[data-widget='courses'] tbody tr td:first-child a").first.click()
    page.wait_for_url(re.compile(r"/reports/[a-z_]+\?.*course="))
    assert query(page)["course"] == [course_id]
    page.wait_for_selector("#report-view[data-loaded]")
    assert f"Course: {course_name}" in chips(page)
    assert page.locator("#report-table tbody tr").count() > 0
    page.go_back()
    loaded(page, "dashboard-view", f"course={course_id}")
    page.close()
