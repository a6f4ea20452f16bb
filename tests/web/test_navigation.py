"""The header: menu groups, entries a viewer can use in the chosen company, and the company
switcher (session and `?company=`), on the two-company site."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from common.models.access import AuditLog
from tests.web.conftest import csrf_token
from web.navigation import GROUPS, NAV_ITEMS, add_nav_item


def menu(client, path: str = "/dashboards/") -> str:  # type: ignore[no-untyped-def]
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    html = page.get_data(as_text=True)
    return html[html.index('<nav aria-label="Main"') : html.index("</nav>")]


def links(nav_html: str) -> set[str]:
    return set(re.findall(r'<a[^>]*href="([^"]+)"', nav_html))


def group_labels(nav_html: str) -> list[str]:
    toggles = re.findall(r'class="nav-toggle"[^>]*>([^<]+)<', nav_html)
    singles = re.findall(r'class="nav-link"[^>]*>([^<]+)<', nav_html)
    return toggles + singles


def switch(client, company: str, next_path: str = "/dashboards/"):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/dashboards/")
    form = {"company": company, "next": next_path, "csrf_token": token}
    return client.post("/company/switch", data=form)


def test_admin_menu_is_grouped_with_disclosure_buttons(client_as):
    html = menu(client_as("admin"))
    for group in ("Analytics", "Email", "Administration"):
        toggle = (f'<button type="button" class="nav-toggle" aria-expanded="false" '
                  f'aria-controls="menu-{group.lower()}">{group}</button>')  # fmt: skip
        assert toggle in html, group
    assert "/admin/email-offload/" in links(html)
    assert "/audit/" in links(html) or any("/audit" in href for href in links(html))


def test_an_unknown_group_is_refused():
    with pytest.raises(ValueError, match="unknown menu group"):
        add_nav_item("Stray", "home.index", group="Misc")
    assert all(item.group in GROUPS for item in NAV_ITEMS)


def test_small_screen_menu_button_controls_the_menu(client_as):
    html = client_as("ana").get("/dashboards/").get_data(as_text=True)
    assert re.search(r'<button type="button" class="menu-button" aria-expanded="false" '
                     r'aria-controls="site-menu">', html)  # fmt: skip
    assert 'id="site-menu"' in html
    assert "js/nav.js" in html


def test_student_sees_no_email_or_administration(client_as):
    html = menu(client_as("ana"))
    labels = group_labels(html)
    assert "Email" not in labels and "Administration" not in labels
    # Their own API tokens are theirs to manage; nothing else of Administration or Email.
    shown = links(html) - {"/admin/api-tokens/"}
    assert not any(href.startswith(("/admin/", "/jobs", "/audit")) for href in shown), shown


def test_manage_entries_follow_the_chosen_company(client_as, site):
    """Manages Acme, plain member of Bolt: Email entries in Acme, none in Bolt."""
    client = client_as("mgr_a_in_b")
    assert "/admin/email-offload/" in links(menu(client))
    assert "/admin/email-offload/" not in links(
        menu(client, f"/dashboards/?company={site.companies['B']}")
    )
    assert switch(client, str(site.companies["B"])).status_code == 302
    in_bolt = menu(client)
    assert "/admin/email-offload/" not in links(in_bolt)
    assert not any(href.startswith("/jobs") for href in links(in_bolt))
    # Every entry the menu shows opens (no 403 behind a menu entry).
    for href in links(in_bolt):
        assert client.get(href).status_code in (200, 302), href


def test_every_menu_entry_opens_for_every_role(client_as):
    for who in ("admin", "mgr_a", "dept_a", "multi", "mgr_a_in_b", "teacher_a", "teacher_solo",
                "ana"):  # fmt: skip
        client = client_as(who)
        for href in links(menu(client)):
            status = client.get(href).status_code
            assert status in (200, 302), f"{who}: {href} answered {status}"


def test_switcher_lists_companies_by_name(client_as, site):
    admin = client_as("admin").get("/dashboards/").get_data(as_text=True)
    assert '<option value="" selected>All companies</option>' in admin
    assert f'<option value="{site.companies["A"]}">Acme</option>' in admin
    assert f'<option value="{site.companies["B"]}">Bolt</option>' in admin
    multi = client_as("multi").get("/dashboards/").get_data(as_text=True)
    assert "All companies" not in multi
    assert f'<option value="{site.companies["A"]}" selected>Acme</option>' in multi
    assert ">Bolt</option>" in multi
    # One company: named, no picker; and never another company's name.
    single = client_as("mgr_a").get("/dashboards/").get_data(as_text=True)
    assert 'id="company-switch"' not in single
    assert '<span class="company-name">Acme</span>' in single
    assert "Bolt" not in single


def test_switch_is_kept_in_the_session_and_the_url_wins(client_as, site):
    client = client_as("multi")
    a, b = site.companies["A"], site.companies["B"]
    response = switch(client, str(b), next_path=f"/reports/?company={a}&x=1")
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert target.path == "/reports/" and f"company={b}" in target.query and "x=1" in target.query
    html = client.get("/dashboards/").get_data(as_text=True)
    assert f'<option value="{b}" selected>Bolt</option>' in html
    html = client.get(f"/dashboards/?company={a}").get_data(as_text=True)
    assert f'<option value="{a}" selected>Acme</option>' in html


def test_switching_to_a_company_not_ones_own_is_an_audited_403(app, client_as, site):
    client = client_as("mgr_a")
    with app.extensions["manireports"].appdb.transaction() as db:
        before = db.scalar(select(func.count()).select_from(AuditLog))
    assert switch(client, str(site.companies["B"])).status_code == 403
    with app.extensions["manireports"].appdb.transaction() as db:
        assert db.scalar(select(func.count()).select_from(AuditLog)) == before + 1
    assert "Bolt" not in client.get("/dashboards/").get_data(as_text=True)


def test_switch_input_is_checked(client_as):
    admin = client_as("admin")
    assert switch(admin, "abc").status_code == 400
    assert switch(admin, "-1").status_code == 400
    assert switch(admin, "9" * 30).status_code == 400
    assert switch(admin, "987654").status_code == 404  # no such company
    assert admin.post("/company/switch", data={"company": "1"}).status_code == 400  # no CSRF
    # Back to "All companies"; an off-site next goes to the dashboards instead.
    response = switch(admin, "", next_path="//evil.example/x")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).netloc in ("", "localhost")
    assert urlsplit(response.headers["Location"]).path == "/dashboards/"


def test_switching_away_from_a_page_one_cannot_use_lands_on_the_dashboards(client_as, site):
    client = client_as("mgr_a_in_b")
    response = switch(client, str(site.companies["B"]), next_path="/admin/email-offload/")
    assert urlsplit(response.headers["Location"]).path == "/dashboards/"


def test_one_company_pages_use_the_switchers_company_instead_of_400(client_as, site):
    admin = client_as("admin")
    page = admin.get("/admin/email-offload/")
    assert page.status_code == 200  # was 400 "choose one company"
    # The first company by name, and the switcher says so.
    assert f'<option value="{site.companies["A"]}" selected>Acme</option>' in page.get_data(
        as_text=True
    )
    switch(admin, str(site.companies["B"]))
    page = admin.get("/admin/email-offload/").get_data(as_text=True)
    assert f'<option value="{site.companies["B"]}" selected>Bolt</option>' in page
    assert admin.get("/jobs/").status_code == 200


def test_a_forms_company_field_is_not_the_company_the_page_works_on(client_as, site):
    """A token restricted to Bolt, created by a manager of both working on Acme: the page that
    answers the POST still shows Acme in the switcher, and so does the next page."""
    client = client_as("multi")
    a, b = site.companies["A"], site.companies["B"]
    assert switch(client, str(a)).status_code == 302
    form = {"csrf_token": csrf_token(client, "/admin/api-tokens/"), "name": "Bolt feed",
            "company": str(b), "scopes": "reports:read", "expires_days": "30"}  # fmt: skip
    created = client.post("/admin/api-tokens/", data=form)
    assert created.status_code == 201, created.get_data(as_text=True)[:2000]
    html = created.get_data(as_text=True)
    assert f'<option value="{a}" selected>Acme</option>' in html
    assert f'<option value="{b}" selected>' not in html
    html = client.get("/dashboards/").get_data(as_text=True)
    assert f'<option value="{a}" selected>Acme</option>' in html
    # A form field that is not an id is the form's business, not a 400 from the header.
    form["company"] = "not-a-number"
    refused = client.post("/admin/api-tokens/", data=form)
    assert refused.status_code == 422
    assert f'<option value="{a}" selected>Acme</option>' in refused.get_data(as_text=True)
    # The query string still chooses the company for its page.
    html = client.get(f"/dashboards/?company={b}").get_data(as_text=True)
    assert f'<option value="{b}" selected>Bolt</option>' in html


def test_a_posted_company_does_not_change_a_pages_scope(app, client_as, site):
    """A POST to a company page takes the company from its URL or the switcher, never from a
    `company` form field: posting Bolt's id to Acme's settings changes Acme's."""
    from common.models.mail import CloudConf

    client = client_as("multi")
    a, b = site.companies["A"], site.companies["B"]
    assert switch(client, str(a)).status_code == 302
    token = csrf_token(client, "/admin/email-offload/")
    form = {"csrf_token": token, "company": str(b), "provider": "smtp", "enabled": "",
            "sender_email": "noreply@acme.example", "chunk_size": "100", "rate_per_s": "5",
            "smtp__host": "smtp.acme.example", "smtp__port": "587",
            "smtp__security": "starttls", "action": "save"}  # fmt: skip
    response = client.post("/admin/email-offload/", data=form)
    # The host is refused (it does not resolve here): the form comes back for Acme, kept.
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert '<h1>Email offload <span class="muted">(Acme)</span></h1>' in html
    assert f'action="/admin/email-offload/?company={a}"' in html
    assert 'value="noreply@acme.example"' in html
    with app.extensions["manireports"].appdb.transaction() as session:
        assert session.query(CloudConf).filter(CloudConf.companyid == b).count() == 0
