"""In a real browser: a company manager adds widgets to a dashboard, drags and resizes them,
saves, reloads — the same layout — and views it; the other company's manager cannot open it.

Set MANIREPORTS_E2E_SCREENSHOTS to a folder to keep screenshots of the builder and of the
dashboard at 1366 and 375 px, as the manager and as the site admin.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.test_drilldown import login

NODES = """() => Array.from(document.querySelector('#grid').gridstack.engine.nodes)
    .map(n => ({id: n.id, x: n.x, y: n.y, w: n.w, h: n.h, type: n.el.dataset.type}))
    .sort((a, b) => a.id < b.id ? -1 : 1)"""
# What the builder sent: the hidden field of the form, sorted as NODES is.
LAYOUT = "JSON.parse(document.querySelector('#layout').value).sort((a, b) => a.id < b.id ? -1 : 1)"
SHOTS = os.environ.get("MANIREPORTS_E2E_SCREENSHOTS")


def shoot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def open_builder(page, url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.wait_for_selector("#builder[data-ready='true']")


def loaded(page, type_: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector(
        f".grid-stack-item[data-type='{type_}'] .widget-body[data-state='loaded']"
    )


def one_column(page) -> None:  # type: ignore[no-untyped-def]
    """Waits for the grid to stack in one column (page.wait_for_function would need eval,
    which the app's CSP refuses)."""
    for _ in range(50):
        if page.evaluate("document.querySelector('#grid').gridstack.getColumn()") == 1:
            page.wait_for_timeout(400)  # gridstack's move animation
            return
        page.wait_for_timeout(100)
    raise AssertionError("the grid did not fall back to one column")


def drag(page, source, dx: float, dy: float) -> None:  # type: ignore[no-untyped-def]
    source.scroll_into_view_if_needed()
    box = source.bounding_box()
    x, y = box["x"] + min(30, box["width"] / 2), box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 11):  # in steps: gridstack follows the pointer, not a jump
        page.mouse.move(x + dx * step / 10, y + dy * step / 10)
    page.mouse.up()


def test_manager_builds_saves_and_reloads_the_same_layout(live_server, browser, demo_site):
    _, logins = demo_site
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    login(page, live_server, "companymanager", logins)
    open_builder(page, f"{live_server}/custom-dashboards/new")
    page.fill("#title", "Browser-built board")
    assert page.input_value("#visibility") == "company"

    page.click("#add-kpi")
    loaded(page, "kpi")
    page.select_option("#setting-filter-days", "90")
    page.fill("#setting-title", "Completions, 90 days")
    page.click("#settings-apply")
    loaded(page, "kpi")
    assert (
        page.inner_text(".grid-stack-item[data-type='kpi'] .widget-title") == "Completions, 90 days"
    )
    page.click("#add-bar")
    loaded(page, "bar")
    page.click("#add-table")
    loaded(page, "table")
    page.fill("#setting-rows", "5")
    page.click("#settings-apply")
    loaded(page, "table")
    assert page.locator(".grid-stack-item[data-type='table'] tbody tr").count() <= 5
    # A pie chart from the palette, removed again: the layout is the three others.
    page.click("#add-pie")
    loaded(page, "pie")
    before = [n for n in page.evaluate(NODES) if n["type"] != "pie"]
    page.click(".grid-stack-item[data-type='pie'] .widget-remove")
    assert len(before) == len(page.evaluate(NODES)) == 3

    # Drag the bar chart right by three columns, then resize the table from its corner.
    grid = page.locator("#grid").bounding_box()
    cell = grid["width"] / 12
    drag(page, page.locator(".grid-stack-item[data-type='bar'] .widget-title"), cell * 3, 0)
    table = page.locator(".grid-stack-item[data-type='table']")
    table.hover()
    drag(page, table.locator(".ui-resizable-se"), -cell * 2, 80 * 2)
    moved = page.evaluate(NODES)
    by_type = {n["type"]: n for n in moved}
    old = {n["type"]: n for n in before}
    assert by_type["bar"]["x"] != old["bar"]["x"], (old, by_type)
    assert (by_type["table"]["w"], by_type["table"]["h"]) != (old["table"]["w"], old["table"]["h"])
    shoot(page, "builder-manager-1366")

    page.click("#save")
    page.wait_for_selector("#builder[data-saved]:not([data-saved='error'])")
    assert page.inner_text("#save-status") == "Saved"
    assert "/edit" in page.url
    edit_url = page.url
    saved = page.evaluate(LAYOUT)
    assert [{k: w[k] for k in ("id", "x", "y", "w", "h")} for w in saved] == [
        {k: n[k] for k in ("id", "x", "y", "w", "h")} for n in moved
    ]
    page.reload()
    page.wait_for_selector("#builder[data-ready='true']")
    assert page.evaluate(NODES) == moved
    loaded(page, "kpi")
    assert (
        page.inner_text(".grid-stack-item[data-type='kpi'] .widget-title") == "Completions, 90 days"
    )

    view_url = edit_url.removesuffix("/edit")
    page.goto(view_url)
    page.wait_for_selector("#built-dashboard[data-loaded='true']")
    assert page.evaluate(NODES) == moved
    states = page.locator(".widget-body").evaluate_all("els => els.map(e => e.dataset.state)")
    assert states == ["loaded"] * 3, states
    shoot(page, "view-manager-1366")
    page.set_viewport_size({"width": 375, "height": 800})
    one_column(page)
    shoot(page, "view-manager-375")
    page.goto(edit_url)
    page.wait_for_selector("#builder[data-ready='true']")
    assert page.evaluate("document.querySelector('#grid').gridstack.getColumn()") == 1
    shoot(page, "builder-manager-375")
    # Stacked on a phone, a save keeps the 12-column places: back at 1366, the same layout.
    page.click("#save")
    page.wait_for_selector("#builder[data-saved]:not([data-saved='error'])")
    page.set_viewport_size({"width": 1366, "height": 900})
    page.reload()
    page.wait_for_selector("#builder[data-ready='true']")
    assert page.evaluate(NODES) == moved
    assert errors == []
    context.close()

    # The other company's manager: not found, on the page and the builder alike.
    other = next(
        x for x in logins if x.role == "companymanager" and x.username != _first_manager(logins)
    )
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server}/login")
    page.fill("#username", other.username)
    page.fill("#password", other.password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    for url in (view_url, edit_url, view_url + "/delete"):
        assert page.goto(url).status == 404, url
    page.goto(f"{live_server}/custom-dashboards/")
    assert "Browser-built board" not in page.inner_text("main")
    context.close()

    if SHOTS:  # the site admin sees every company's dashboards
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        page = context.new_page()
        login(page, live_server, "admin", logins)
        page.goto(view_url)
        page.wait_for_selector("#built-dashboard[data-loaded='true']")
        shoot(page, "view-admin-1366")
        open_builder(page, edit_url)
        loaded(page, "table")
        page.click(".grid-stack-item[data-type='table'] .widget-edit")
        shoot(page, "builder-admin-1366")
        page.set_viewport_size({"width": 375, "height": 800})
        one_column(page)
        shoot(page, "builder-admin-375")
        page.goto(view_url)
        page.wait_for_selector("#built-dashboard[data-loaded='true']")
        shoot(page, "view-admin-375")
        context.close()


def _first_manager(logins) -> str:  # type: ignore[no-untyped-def]
    return next(x.username for x in logins if x.role == "companymanager")


def test_a_widget_whose_report_the_viewer_may_not_run_says_so(live_server, browser, demo_site):
    _, logins = demo_site
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    login(page, live_server, "admin", logins)
    open_builder(page, f"{live_server}/custom-dashboards/new")
    page.fill("#title", "For everyone")
    page.select_option("#visibility", "global")
    page.click("#add-kpi")
    loaded(page, "kpi")
    page.select_option("#setting-report", "company_summary")  # site admins' report
    loaded(page, "kpi")
    page.click("#add-bar")
    loaded(page, "bar")
    page.select_option("#setting-report", "course_completion")  # teachers may run it
    loaded(page, "bar")
    page.click("#save")
    page.wait_for_selector("#builder[data-saved]:not([data-saved='error'])")
    view_url = page.url.removesuffix("/edit")
    context.close()

    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    login(page, live_server, "teacher", logins)
    page.goto(f"{live_server}/custom-dashboards/")
    page.click("text=For everyone")
    page.wait_for_selector("#built-dashboard[data-loaded='true']")
    assert page.url == view_url
    kpi = page.locator(".grid-stack-item[data-type='kpi'] .widget-body")
    assert kpi.get_attribute("data-state") == "unavailable"
    assert kpi.inner_text() == "This widget's report is not available to you."
    assert page.locator(".grid-stack-item[data-type='bar'] .widget-body").get_attribute(
        "data-state") == "loaded"  # fmt: skip
    assert page.goto(view_url + "/edit").status == 403  # a teacher builds nothing
    context.close()
