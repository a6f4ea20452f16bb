"""The compose page and the template editor in real headless Chromium, at 1366 and 375 px:
the chosen source alone is shown, the recipient count follows the choice, a refused form
comes back with everything typed, the test send answers on the page, the editor's preview
follows typing and points at a broken tag. Screenshots go to $COMPOSE_SHOTS when set."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from waitress.server import create_server

from common.nats_server import free_port
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.factories.moodle import DEFAULT_PASSWORD

WIDTHS = {"wide": 1366, "narrow": 375}
BROKEN = "<p>Hi {{firstname}</p> {{#license}}"
SHOTS = os.environ.get("COMPOSE_SHOTS")


@pytest.fixture(scope="module")
def live(compose_app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
    server = create_server(compose_app, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    server.close()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not CHROMIUM:
        pytest.skip("Debian chromium is not installed (make test installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(params=list(WIDTHS))
def page(request, browser, live):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": WIDTHS[request.param], "height": 900})
    opened = context.new_page()
    opened.goto(f"{live}/login")
    opened.fill("#username", "mgr_a")
    opened.fill("#password", DEFAULT_PASSWORD)
    opened.click("button[type=submit]")
    opened.wait_for_url(lambda url: "/login" not in url)
    opened.width_name = request.param
    yield opened
    context.close()


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{name}-{page.width_name}.png", full_page=True)


def fits(page) -> bool:  # type: ignore[no-untyped-def]
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_compose_page_sources_count_refusal_and_test_send(composed_site, live, page, tmp_path):
    acme = composed_site.site.companies["A"]
    page.goto(f"{live}/jobs/new?company={acme}")
    assert page.locator("#recipients").is_visible() and not page.locator("#course").is_visible()
    assert fits(page), "the page scrolls sideways"
    shot(page, "compose-empty")

    page.check("input[name=source][value=course]")
    assert page.locator("#course").is_visible() and not page.locator("#recipients").is_visible()
    page.select_option("#course", label="Fire Safety")
    count = page.locator("#recipient-count")
    count.filter(has_text="4 recipients").wait_for()

    csv_file = tmp_path / "team.csv"
    csv_file.write_text("email;First name\nana@acme.example;Ana\nbad-address;Bo\n")
    page.check("input[name=source][value=csv]")
    page.set_input_files("#csv", str(csv_file))
    count.filter(has_text="line 3").wait_for()
    assert "'bad-address'" in count.inner_text()

    page.check("input[name=source][value=paste]")
    page.fill("#subject", "Hello {{firstname}}")
    page.fill("#html", BROKEN)
    page.fill("#recipients", "ana@acme.example,Ana\nnot-an-address")
    count.filter(has_text="line 2").wait_for()
    page.click("#create-button")
    page.locator("#form-errors").wait_for()
    errors = page.locator("#form-errors").inner_text()
    assert "line 1, column 7" in errors and "line 2 ('not-an-address')" in errors
    assert page.input_value("#html") == BROKEN
    assert page.input_value("#recipients") == "ana@acme.example,Ana\nnot-an-address"
    assert page.input_value("#subject") == "Hello {{firstname}}"
    assert page.locator("#html").get_attribute("aria-invalid") == "true"
    assert fits(page), "the refused form scrolls sideways"
    # The refused list's error stands beside it once: the page does not count it again.
    page.wait_for_timeout(800)
    assert count.inner_text() == ""
    shot(page, "compose-refused")

    page.fill("#html", "<p>Hi {{firstname}}</p>")
    page.fill("#recipients", "ana@acme.example,Ana")
    page.fill("#test_to", "checker@acme.example")
    page.click("#test-button")
    page.locator("#test-result").filter(has_text="queued as job").wait_for()
    assert page.url.endswith(f"/jobs/create?company={acme}")  # still the page, nothing lost
    shot(page, "compose-tested")


def test_template_editor_previews_as_one_types_and_points_at_a_broken_tag(
    composed_site, live, page
):
    acme = composed_site.site.companies["A"]
    page.goto(f"{live}/admin/email-offload/templates/edit?company={acme}&type=certificate")
    assert fits(page), "the editor scrolls sideways"
    frame = page.frame_locator("#preview-frame")
    frame.locator("text=Congratulations on completing Fire Safety").wait_for()
    page.fill("#html", BROKEN)
    issues = page.locator("#issues-html li")
    issues.first.wait_for()
    assert issues.all_inner_texts()[0].startswith("Line 1, column 7: the tag '{{firstname}</p>'")
    assert "html:" in page.locator("#preview-status").inner_text()
    shot(page, "editor-broken")
    page.fill("#html", "<h2>{{course}}</h2><script>document.title='owned'</script>")
    frame.locator("h2", has_text="Fire Safety").wait_for()
    assert page.locator("#issues-html li").count() == 0
    assert page.title() != "owned"  # the body runs in a sandboxed frame, never in the page
    shot(page, "editor-preview")


def test_the_editor_opens_with_its_preview_and_retries_a_preview_call_not_answered(
    composed_site, live, page
):  # type: ignore[no-untyped-def]
    """The page is drawn with its preview (no wait on the first live call), and a live call
    the server does not answer is tried again by itself: no typing needed to recover."""
    acme = composed_site.site.companies["A"]
    calls: list[str] = []

    def busy_twice(route):  # type: ignore[no-untyped-def]
        calls.append(route.request.url)
        if len(calls) <= 2:
            route.fulfill(status=503, body="busy")
        else:
            route.continue_()

    page.route("**/templates/preview*", busy_twice)
    page.goto(f"{live}/admin/email-offload/templates/edit?company={acme}&type=certificate")
    frame = page.frame_locator("#preview-frame")
    assert "Congratulations on completing Fire Safety" in frame.locator("body").inner_text()
    page.fill("#html", "<h2>Retried {{course}}</h2>")
    frame.locator("h2", has_text="Retried Fire Safety").wait_for()
    assert len(calls) >= 3
    status = page.locator("#preview-status")
    assert status.inner_text() == "Preview with the sample variables."
    assert "bad" not in (status.get_attribute("class") or "")
