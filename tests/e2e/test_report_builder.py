"""In a real browser: build a report (table, join, columns, a dropdown filter), see the live
preview and its SQL, save, run and export it — and a company manager can open neither the
builder nor the saved report."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from tests.e2e.test_drilldown import login
from tests.e2e.test_walk import AXE, BLOCKING

SHOTS = Path(os.environ.get("MANIREPORTS_SCREENSHOTS", "/tmp/manireports-shots"))


def preview_settled(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the preview answered the document as it is now (no request pending)."""
    page.wait_for_function(
        "() => { const s = document.getElementById('rb-status').textContent;"
        " return s && s !== 'Updating…'; }"
    )


def test_build_preview_save_run_and_export(browser, live_server, demo_site):  # type: ignore[no-untyped-def]
    _, logins = demo_site
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, live_server, "admin", logins)
    page.goto(f"{live_server}/reportbuilder/")
    assert page.locator("#rb-base option:checked").inner_text() == "Learners"

    page.select_option("#rb-relation", "course_completions.userid=user.id")
    page.click("#rb-add-join")
    page.select_option("#rb-relation", "course_completions.course=course.id")
    page.click("#rb-add-join")
    assert page.locator("#rb-joins li").count() == 2
    page.locator("summary", has_text="Learners columns").click()
    page.check("#rb-col-user-firstname")
    page.check("#rb-col-user-lastname")
    page.locator("summary", has_text="Courses columns").click()
    page.check("#rb-col-course-fullname")
    page.locator("summary", has_text="Course completions columns").click()
    page.check("#rb-col-course_completions-timecompleted")
    assert page.locator("#rb-columns li").count() == 4
    preview_settled(page)
    assert page.locator("#rb-preview thead th").all_inner_texts() == [
        "First name", "Last name", "Course name", "Completed"]  # fmt: skip
    assert page.locator("#rb-preview tbody tr").count() > 0

    # A filter on the course name, chosen from the dropdown of the column's values.
    page.select_option("#rb-filter-column", "course.fullname")
    page.click("#rb-add-filter")
    dropdown = page.locator("#rb-filter-0-v0")
    dropdown.wait_for()
    assert dropdown.evaluate("e => e.tagName") == "SELECT"
    course = dropdown.locator("option").nth(1).inner_text()
    dropdown.select_option(course)
    page.wait_for_function("() => document.getElementById('rb-sql-text').value.includes(':p1')")
    preview_settled(page)
    courses = set(page.locator("#rb-preview tbody td:nth-child(3)").all_inner_texts())
    assert courses == {course}
    assert course not in page.locator("#rb-sql-text").input_value()
    dates = page.locator("#rb-preview tbody td:nth-child(4)").all_inner_texts()
    assert all(re.fullmatch(r"(\d{4}-\d\d-\d\d \d\d:\d\d)?", d) for d in dates)

    if AXE.exists():  # the built form, filters and preview: no serious accessibility fault
        page.evaluate(AXE.read_text())
        found = page.evaluate(
            "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map("
            "v => [v.impact, v.id, v.nodes.slice(0, 3).map(n => n.target.join(' '))]))"
        )
        assert [v for v in found if v[0] in BLOCKING] == []

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "report-builder-1366.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})
    page.screenshot(path=str(SHOTS / "report-builder-375.png"), full_page=True)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px at 375 px"
    page.set_viewport_size({"width": 1366, "height": 900})

    # Saving without a title keeps everything built; with one, it saves.
    page.click("#rb-save")
    page.wait_for_function(
        "() => document.getElementById('rb-saved').textContent.startsWith('Not saved')"
    )
    assert "title" in page.locator("#rb-saved").inner_text()
    assert page.locator("#rb-columns li").count() == 4
    page.fill("#rb-title", f"Completions of {course}")
    page.click("#rb-save")
    page.wait_for_selector("#rb-run:not([hidden])")
    run_url = page.locator("#rb-run").get_attribute("href")
    assert run_url and re.fullmatch(r"/reports/custom_\d+", run_url)
    assert re.search(r"/reportbuilder/\d+$", page.url)

    page.reload()  # the edit page brings the document back
    assert page.locator("#rb-joins li").count() == 2
    assert page.locator("#rb-columns li").count() == 4
    assert page.locator("#rb-filter-0-v0").input_value() == course
    assert page.locator("#rb-title").input_value() == f"Completions of {course}"

    page.goto(live_server + run_url)
    page.wait_for_selector("#report-table tbody tr")
    headings = page.locator("#report-table thead th").all_inner_texts()
    assert [h.strip() for h in headings][:3] == ["First name", "Last name", "Course name"]
    with page.expect_download() as download:
        page.click("#export-csv")
    content = Path(download.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(content)))
    table = [r for r in rows if len(r) == 4]
    assert table[0] == ["First name", "Last name", "Course name", "Completed"]
    assert len(table) > 1 and {r[2] for r in table[1:]} == {course}
    assert not errors, errors

    manager = browser.new_context()
    other = manager.new_page()
    login(other, live_server, "companymanager", logins)
    assert other.goto(f"{live_server}/reportbuilder/").status == 403
    assert other.goto(live_server + run_url).status in (403, 404)
    assert other.goto(f"{live_server}{run_url}/export.csv").status in (403, 404)
    assert "Report builder" not in other.goto(f"{live_server}/dashboards/").text()  # type: ignore[union-attr]
    manager.close()
    context.close()
