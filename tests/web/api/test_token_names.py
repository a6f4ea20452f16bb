"""The API tokens pages name companies and people, never their ids."""

from __future__ import annotations

import re

from tests.web.analytics.pages import cells
from tests.web.api.test_tokens_page import PAGE, create


def options(html: str) -> list[tuple[str, str]]:
    select = re.search(r'<select id="company" name="company">.*?</select>', html, re.S)
    assert select, "no company list"
    return re.findall(r'<option value="(\d*)"[^>]*>([^<]+)</option>', select[0])


def test_a_token_restricted_to_a_company_names_it(site, client_as):
    admin = client_as("admin")
    bolt = site.companies["B"]
    created = create(admin, username="mgr_b", company=str(bolt), expires_days="30")
    body = created.get_data(as_text=True)
    assert created.status_code == 201
    assert "only Bolt" in body and f"company {bolt}" not in body
    assert re.search(r"expires \d{1,2} \w{3} \d{4}, \d\d:\d\d UTC", body)
    listing = admin.get(PAGE).get_data(as_text=True)
    [row] = [r for r in cells(listing, "token-table") if r and r[0] == "Power BI refresh"]
    assert row[2] == "mgr_b" and row[4] == "Bolt"
    assert f'<a href="/users/{site.users["mgr_b"]}">mgr_b</a>' in listing
    # Times read as words with the exact time as the title ("never" for no use yet).
    assert row[6] == "never" and row[5] not in ("", "never")
    assert re.search(r'<td class="when"><time datetime="[^"]+" title="\d{1,2} \w{3} \d{4}, '
                     r'\d\d:\d\d UTC">', listing)  # fmt: skip
    # The admin picks the company by name from every company of the site.
    assert options(listing) == [("", "No restriction"), (str(site.companies["A"]), "Acme"),
                                (str(bolt), "Bolt")]  # fmt: skip


def test_a_manager_picks_among_their_companies_by_name(site, client_as):
    page = client_as("mgr_a").get(PAGE).get_data(as_text=True)
    assert options(page) == [("", "No restriction"), (str(site.companies["A"]), "Acme")]
    response = create(client_as("mgr_a"), company=str(site.companies["A"]))
    assert "only Acme" in response.get_data(as_text=True)
