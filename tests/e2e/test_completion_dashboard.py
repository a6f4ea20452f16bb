"""In a real browser: sign in, change the range, the chart and table update in place (the URL
holds the range), the CSV export holds exactly the rows and columns on screen."""

import csv
import io


def login(page, base, username, password):
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def table_on_screen(page):
    header = page.locator("#report-table thead th").all_inner_texts()
    rows = [
        row.locator("td").all_inner_texts() for row in page.locator("#report-table tbody tr").all()
    ]
    return [header] + rows


def as_screen_text(csv_rows):
    """The CSV's numbers formatted as the table shows them."""
    header, *rows = csv_rows
    percent = header.index("Completion %")
    return [header] + [
        [f"{float(v):.1f} %" if i == percent else v for i, v in enumerate(row)] for row in rows
    ]


def test_manager_changes_range_without_navigation_and_exports_what_is_shown(
    live_server, browser, demo_site
):
    _, logins = demo_site
    manager = next(login for login in logins if login.role == "companymanager")
    page = browser.new_page(accept_downloads=True)
    login(page, live_server, manager.username, manager.password)
    page.goto(f"{live_server}/dashboards/completion")
    page.wait_for_selector("#report-view[data-loaded='']")
    assert page.input_value("#filter-days") == "30"
    assert page.locator("#report-chart").get_attribute("data-points") == "31"
    before = table_on_screen(page)
    url_before = page.url

    page.evaluate("window.__sameDocument = true")
    page.select_option("#filter-days", "90")
    page.wait_for_selector("#report-view[data-loaded='days=90']")
    assert page.locator("#report-chart").get_attribute("data-points") == "91"
    assert page.evaluate("window.__sameDocument") is True, "the page navigated"
    assert page.url == url_before + "?days=90"
    after = table_on_screen(page)
    assert after[0] == before[0]
    in_range = after[0].index("Completed in range")
    assert sum(int(r[in_range]) for r in after[1:]) >= sum(int(r[in_range]) for r in before[1:])

    with page.expect_download() as download_info:
        page.click("#export-csv")
    exported = list(csv.reader(io.StringIO(download_info.value.path().read_text())))
    assert as_screen_text(exported) == after
    page.close()


def test_student_is_refused_the_dashboard(live_server, browser, demo_site):
    _, logins = demo_site
    student = next(login for login in logins if login.role == "student")
    page = browser.new_page()
    login(page, live_server, student.username, student.password)
    response = page.goto(f"{live_server}/dashboards/completion")
    assert response.status == 403
    assert "capability" in page.inner_text("main")
    page.close()
