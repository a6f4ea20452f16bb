"""The template editor's preview stops a template bomb fast, naming the part, writing nothing."""

from __future__ import annotations

import json
import time

from tests.web.jobs.test_templates_ui import audit, post_template, stored

BOMB = "{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}x{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}"


def test_a_944_byte_preview_bomb_is_refused_fast(app, site, client_as):
    client = client_as("mgr_a")
    sample = json.dumps({"l": list(range(40))})
    started = time.monotonic()

    response = post_template(client, site.companies["A"], action="preview", sample=sample,
                             html=f"<p>{BOMB}</p>" * 15)  # fmt: skip

    assert time.monotonic() - started < 3
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and len(body) < 100_000
    assert "html: the rendered text is longer than 262,144 characters" in body
    assert stored(app) == [] and audit(app) == []


def test_the_live_preview_stops_the_same_bomb_fast(app, site, client_as):
    from tests.web.jobs.test_templates_ui import live

    client = client_as("mgr_a")
    started = time.monotonic()
    response = live(client, site.companies["A"], sample=json.dumps({"l": list(range(40))}),
                    html=f"<p>{BOMB}</p>" * 15)  # fmt: skip
    assert time.monotonic() - started < 3
    assert response.status_code == 422 and len(response.get_data()) < 10_000
    assert "longer than 262,144 characters" in response.get_json()["errors"][0]["error"]
    assert stored(app) == [] and audit(app) == []
