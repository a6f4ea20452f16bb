"""The walk: each demo role, at a desktop and a phone width, opens every entry of the menu it
is shown — reached the way a person reaches it (Menu button, group, link) — and its own user
page, a course page and an error page. On every page: no 4xx/5xx response, no console error,
no horizontal scroll, and axe-core finds no serious or critical accessibility violation.

The menu is read from the rendered page, never listed here: an entry added to the app is
walked without touching this test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_drilldown import login

AXE = Path(__file__).resolve().parents[2] / "web/static/vendor/axe.min.js"
ROLES = ("admin", "companymanager", "teacher", "student")
WIDTHS = (1366, 375)
SMALL = 960  # below this the header collapses behind the Menu button (app.css)
BLOCKING = ("serious", "critical")
# The innermost elements that stick out past the right edge (what makes a page scroll sideways).
WIDEST = """() => Array.from(document.querySelectorAll('body *')).filter(e => {
    const out = (el) => el.getBoundingClientRect().right > innerWidth + 1;
    return out(e) && !e.closest('.table-wrap') && getComputedStyle(e).position !== 'fixed'
        && !Array.from(e.children).some(out);
}).slice(0, 3).map(e => {
    const cls = typeof e.className === 'string' && e.className.trim()
        ? '.' + e.className.trim().split(/\\s+/).join('.') : '';
    return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + cls
        + ' right=' + Math.round(e.getBoundingClientRect().right);
})"""


@dataclass
class Findings:
    """What went wrong on the pages of one walk, by page."""

    responses: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)
    axe: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.responses + self.console + self.overflow + self.axe


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        pytest.skip("axe-core missing from web/static/vendor: run `make vendor`")
    return AXE.read_text()


def watch(page: Any, findings: Findings) -> None:  # type: ignore[no-untyped-def]
    def on_response(response: Any) -> None:
        if response.status >= 400 and not response.url.endswith("/expected-404"):
            findings.responses.append(f"{response.status} {response.request.method} "
                                      f"{response.url} (on {page.url})")  # fmt: skip

    def on_console(message: Any) -> None:
        if message.type == "error" and not page.url.endswith("/expected-404"):
            findings.console.append(f"{page.url}: {message.text}")

    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda error: findings.console.append(f"{page.url}: {error}"))


def check_page(page: Any, axe_source: str, findings: Findings) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_load_state("networkidle")
    width, scroll = page.evaluate("[innerWidth, document.documentElement.scrollWidth]")
    if scroll > width:
        culprits = page.evaluate(WIDEST)
        findings.overflow.append(f"{page.url}: scrollWidth {scroll} > innerWidth {width}, "
                                 f"widest: {culprits}")  # fmt: skip
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)  # evaluate is not subject to the page's CSP
    result = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map("
        "v => ({id: v.id, impact: v.impact, help: v.help,"
        " targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))"
    )
    for violation in result:
        if violation["impact"] in BLOCKING:
            findings.axe.append(f"{page.url}: {violation['impact']} {violation['id']} "
                                f"({violation['help']}) at {violation['targets']}")  # fmt: skip


def menu_entries(page: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Every link of the rendered main menu, with the group button that reveals it."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('nav[aria-label="Main"] a[href]')).map(a => {
            const group = a.closest('.nav-group');
            const toggle = group && group.querySelector('.nav-toggle');
            return {href: a.getAttribute('href'), label: a.textContent.trim(),
                    group: toggle ? toggle.getAttribute('aria-controls') : null};
        })"""
    )


def open_entry(page: Any, entry: dict[str, Any], width: int) -> None:  # type: ignore[no-untyped-def]
    """Reach an entry as a person would: Menu button (small screens), group, link."""
    if width < SMALL:
        button = page.locator(".menu-button")
        assert button.is_visible(), "no Menu button on a small screen"
        button.click()
        assert button.get_attribute("aria-expanded") == "true"
    if entry["group"]:
        toggle = page.locator(f".nav-toggle[aria-controls='{entry['group']}']")
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true"
    link = page.locator(f'nav[aria-label="Main"] a[href="{entry["href"]}"]')
    assert link.is_visible(), f"menu entry {entry['label']} is not visible once its group is open"
    with page.expect_navigation():
        link.click()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", ROLES)
def test_walk(browser, live_server, demo_site, axe_source, role: str, width: int):  # type: ignore[no-untyped-def]
    _, logins = demo_site
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    findings = Findings()
    watch(page, findings)
    try:
        login(page, live_server, role, logins)
        check_page(page, axe_source, findings)
        entries = menu_entries(page)
        assert entries, f"{role} has an empty menu"
        walked = []
        for entry in entries:
            open_entry(page, entry, width)
            assert page.url.split("?")[0].endswith(entry["href"]) or entry["href"] in page.url, (
                f"{entry['label']} led to {page.url}"
            )
            check_page(page, axe_source, findings)
            walked.append(entry["label"])
        # Their own page, from the header, and the first course linked there or in a table.
        page.locator(".viewer-name").click() if width >= SMALL else page.goto(
            live_server + page.locator(".viewer-name").get_attribute("href")
        )
        page.wait_for_load_state()
        assert page.url.rsplit("/", 2)[-2] == "users"
        check_page(page, axe_source, findings)
        course = page.locator("main a[href^='/courses/']").first
        if course.count():
            course.click()
            page.wait_for_load_state()
            check_page(page, axe_source, findings)
        # An error page is a page of the app too (its 404 is expected, not a finding).
        response = page.goto(live_server + "/expected-404")
        assert response is not None and response.status == 404
        assert page.locator("header.topbar").count() == 1
        check_page(page, axe_source, findings)
    finally:
        context.close()
    assert not findings.problems(), f"{role} at {width}px walked {walked}:\n" + "\n".join(
        findings.problems()
    )


def focused(page: Any) -> str:  # type: ignore[no-untyped-def]
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return (e.getAttribute('href') || e.className || e.tagName); }"
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_the_menu_works_from_the_keyboard(browser, live_server, demo_site, width: int):  # type: ignore[no-untyped-def]
    _, logins = demo_site
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    try:
        login(page, live_server, "admin", logins)
        if width < SMALL:
            menu = page.locator(".menu-button")
            assert not page.locator("#site-menu").is_visible()
            menu.focus()
            page.keyboard.press("Enter")
            assert menu.get_attribute("aria-expanded") == "true"
            assert page.locator("#site-menu").is_visible()
        toggle = page.locator(".nav-toggle").first
        links = toggle.locator("xpath=following-sibling::ul//a")
        assert not links.first.is_visible()
        toggle.focus()
        page.keyboard.press("Enter")
        assert toggle.get_attribute("aria-expanded") == "true" and links.first.is_visible()
        page.keyboard.press("ArrowDown")
        assert focused(page) == links.nth(0).get_attribute("href")
        page.keyboard.press("ArrowDown")
        assert focused(page) == links.nth(1).get_attribute("href")
        page.keyboard.press("Escape")
        assert toggle.get_attribute("aria-expanded") == "false"
        assert "nav-toggle" in focused(page) and not links.first.is_visible()
        # Tab walks into an open group's links, in order.
        page.keyboard.press("Space")
        page.keyboard.press("Tab")
        assert focused(page) == links.nth(0).get_attribute("href")
        if width < SMALL:
            page.keyboard.press("Escape")  # closes the group
            page.keyboard.press("Escape")  # then the menu
            assert page.locator(".menu-button").get_attribute("aria-expanded") == "false"
            assert not page.locator("#site-menu").is_visible()
    finally:
        context.close()
