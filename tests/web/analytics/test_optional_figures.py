"""xAPI statements and video time appear on the overview and per learner where the site tracks
them (setting on and table present), and nowhere otherwise."""

from sqlalchemy import insert

from common.analytics.optional_sources import xapi_table
from common.migrate import upgrade
from services.aggregator.jobs import Jobs
from tests.factories.sites import DAY, NOW
from tests.support import make_settings
from tests.web.analytics.pages import cells, kpi
from tests.web.conftest import sign_in
from web.app import create_app


def signed_in_client(app, username):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert sign_in(client, username).status_code == 302
    return client


def test_xapi_shows_where_tracked_and_video_stays_hidden_without_its_table(
    site, tmp_path, nats_server, client_as
):  # type: ignore[no-untyped-def]
    statements = xapi_table("mdl_")
    statements.create(site.moodle.engine)
    ana, fire = site.users["ana"], site.courses["Fire Safety"]
    with site.moodle.engine.begin() as conn:
        conn.execute(insert(statements), [
            {"id": n, "userid": ana, "courseid": fire, "timecreated": NOW - n * DAY}
            for n in (1, 2, 3, 40)  # the fourth is older than 30 days
        ])  # fmt: skip
    on = {"ANALYTICS_XAPI_ENABLED": "true", "ANALYTICS_VIDEO_ENABLED": "true"}
    settings = make_settings(tmp_path, MOODLE_DATABASE_URL=site.url, NATS_URL=nats_server.url, **on)
    upgrade(settings.database_url)
    app = create_app(settings)
    ctx = app.extensions["manireports"]
    ctx.clock = lambda: NOW
    try:
        Jobs(settings, ctx.appdb, ctx.moodle).preaggregate(NOW)
        client = signed_in_client(app, "mgr_a")
        overview = client.get("/analytics/").get_data(as_text=True)
        assert kpi(overview, "xapi_statements_30") == "3"
        assert "xAPI statements, 30 days" in overview
        assert "Video" not in overview  # its setting is on, but the site has no table
        fire_row = next(r for r in cells(overview, "course-table") if r[0] == "Fire Safety")
        assert fire_row[4] == "3"
        at_risk = client.get("/analytics/at-risk").get_data(as_text=True)
        rows = cells(at_risk, "at-risk-table")
        assert [r[5] for r in rows if r[:2] == ["Ana Learner", "Fire Safety"]] == ["3"]
        by_statements = client.get("/analytics/at-risk?sort=xapi_statements_30&dir=desc")
        assert cells(by_statements.get_data(as_text=True), "at-risk-table")[0][:2] == [
            "Ana Learner", "Fire Safety"]  # fmt: skip
        # Bolt's manager: the column, but none of Acme's statements.
        bolt = signed_in_client(app, "mgr_b").get("/analytics/").get_data(as_text=True)
        assert kpi(bolt, "xapi_statements_30") == "0"
    finally:
        ctx.close()
    # The same site with the settings off (the `app` fixture): no column anywhere.
    page = client_as("mgr_a").get("/analytics/at-risk").get_data(as_text=True)
    assert "xAPI" not in page
