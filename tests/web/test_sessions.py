"""Server-side sessions: a cookie is only as good as its row in the app DB says."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from common.models.access import AuditLog, WebSession
from tests.factories.sites import NOW
from tests.web.conftest import csrf_token, sign_in

SIGNED_IN_PAGE = "/dashboards/"


def signed_in(client) -> bool:
    response = client.get(SIGNED_IN_PAGE)
    if response.status_code == 302:
        assert "/login" in response.headers["Location"]
        return False
    assert response.status_code == 200
    return True


def copy_of(app, client):
    """Another browser holding an exact copy of `client`'s cookie (a stolen cookie)."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def set_clock(app, t: float) -> None:
    app.extensions["manireports"].clock = lambda: t


def rows(app, model=WebSession):
    with app.extensions["manireports"].appdb.transaction() as db:
        return list(db.scalars(select(model)))


def test_a_copied_cookie_is_worthless_after_logout(app, client_as):
    client = client_as("ana")
    thief = copy_of(app, client)
    assert signed_in(thief)  # the copy works while the session lives
    token = csrf_token(client, SIGNED_IN_PAGE)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert not signed_in(thief)
    assert not signed_in(client)
    [row] = rows(app)
    assert row.revoked is not None and row.revoked_reason == "signed out"


def test_the_cookie_holds_a_random_id_and_the_db_only_its_hash(app, client_as, site):
    client = client_as("ana")
    [row] = rows(app)
    assert row.userid == site.users["ana"]
    with client.session_transaction() as cookie:
        assert set(cookie) <= {"sid", "csrf_token", "_permanent"}  # no user id in it
        session_id = cookie["sid"]
    assert len(session_id) >= 40 and session_id != row.sid_hash
    assert row.sid_hash not in client.get_cookie("session").value


def test_the_cookie_alone_without_its_row_is_useless(app, client_as):
    client = client_as("ana")
    with app.extensions["manireports"].appdb.transaction() as db:
        db.execute(delete(WebSession))
    assert not signed_in(client)


def test_a_hash_from_a_db_dump_is_useless_as_a_cookie(app, client_as):
    client_as("ana")
    [row] = rows(app)
    forger = app.test_client()
    with forger.session_transaction() as cookie:  # signed with the app's own key, even
        cookie["sid"] = row.sid_hash
    assert not signed_in(forger)


def test_old_style_cookies_naming_a_user_id_are_ignored(app, site):
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["user_id"] = site.users["admin"]
    assert not signed_in(client)


def test_idle_sessions_end(app, client_as):
    idle = app.extensions["manireports"].settings.login_idle_timeout_s
    client = client_as("ana")
    set_clock(app, NOW + idle - 60)
    assert signed_in(client)  # used just in time: the idle clock starts again
    set_clock(app, NOW + 2 * idle - 120)
    assert signed_in(client)
    set_clock(app, NOW + 3 * idle)
    assert not signed_in(client)
    set_clock(app, NOW + 2 * idle - 100)  # even if the clock went back, it stays ended
    assert not signed_in(client)
    assert rows(app)[0].revoked_reason == "idle timeout"


def test_sessions_end_at_their_maximum_age_however_busy(app, client_as):
    settings = app.extensions["manireports"].settings
    client = client_as("ana")
    t = NOW
    while t + 1800 < NOW + settings.login_max_age_s:
        t += 1800
        set_clock(app, t)
        assert signed_in(client)
    set_clock(app, NOW + settings.login_max_age_s)
    assert not signed_in(client)


def test_last_seen_is_written_at_most_once_a_minute(app, client_as):
    client = client_as("ana")
    start = datetime.fromtimestamp(NOW, UTC)
    for offset in (10, 30, 59):
        set_clock(app, NOW + offset)
        assert signed_in(client)
        assert rows(app)[0].last_seen == start
    set_clock(app, NOW + 61)
    assert signed_in(client)
    assert rows(app)[0].last_seen == start + timedelta(seconds=61)


def test_sign_out_everywhere_ends_every_browser_of_that_user_only(app, client_as, site):
    laptop, phone, other = client_as("ana"), client_as("ana"), client_as("ben")
    page = laptop.get("/account/sessions")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert text.count("<tr><td>") == 2 and "this browser" in text  # ana's two, not ben's
    token = csrf_token(laptop, "/account/sessions")
    response = laptop.post("/account/sessions/sign-out-everywhere", data={"csrf_token": token})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert not signed_in(phone)
    assert not signed_in(laptop)
    assert signed_in(other)
    [entry] = [a for a in rows(app, AuditLog) if a.action == "sessions_revoked"]
    assert entry.userid == site.users["ana"] and entry.object_id == str(site.users["ana"])
    assert '"sessions": 2' in entry.details


def test_sign_out_everywhere_needs_csrf_and_a_session(app, client_as):
    client = client_as("ana")
    assert client.post("/account/sessions/sign-out-everywhere").status_code == 400
    assert signed_in(client)
    anonymous = app.test_client()
    assert anonymous.get("/account/sessions").status_code == 302


def test_a_site_admin_signs_a_user_out_everywhere_audited(app, client_as, site):
    victim_laptop, victim_phone = client_as("ben"), client_as("ben")
    admin = client_as("admin")
    token = csrf_token(admin, "/account/sign-out-user")
    response = admin.post("/account/sign-out-user", data={"username": " BEN ", "csrf_token": token})
    assert response.status_code == 302
    assert not signed_in(victim_laptop) and not signed_in(victim_phone)
    assert signed_in(admin)
    [entry] = [a for a in rows(app, AuditLog) if a.action == "sessions_revoked"]
    assert entry.userid == site.users["admin"] and entry.object_id == str(site.users["ben"])
    unknown = admin.post("/account/sign-out-user", data={"username": "nobody",
                                                          "csrf_token": token})  # fmt: skip
    assert unknown.status_code == 422
    assert "no account has this username" in unknown.get_data(as_text=True)


def test_only_site_admins_sign_other_users_out(app, client_as):
    victim = client_as("ben")
    manager = client_as("mgr_a")
    assert manager.get("/account/sign-out-user").status_code == 403
    token = csrf_token(manager, "/account/sessions")
    response = manager.post("/account/sign-out-user", data={"username": "ben",
                                                             "csrf_token": token})  # fmt: skip
    assert response.status_code == 403
    assert signed_in(victim)
    assert any(a.action == "access_denied" for a in rows(app, AuditLog))


def test_a_suspended_user_loses_every_session_for_good(app, client_as, site):
    laptop, phone = client_as("ana"), client_as("ana")
    site.moodle._update("user", site.users["ana"], suspended=1)
    assert not signed_in(laptop)
    site.moodle._update("user", site.users["ana"], suspended=0)
    # Revoked, not merely refused while suspended: lifting the suspension revives nothing.
    assert not signed_in(phone)
    assert not signed_in(laptop)
    assert all(row.revoked_reason == "suspended or deleted" for row in rows(app))


def test_a_deleted_user_loses_their_session(app, client_as, site):
    client = client_as("dan")
    site.moodle.delete_user(site.users["dan"])
    assert not signed_in(client)
    assert rows(app)[0].revoked is not None


def test_sessions_ended_more_than_a_day_ago_are_purged_at_sign_in(app, client_as):
    old, recent = client_as("ana"), client_as("ana")
    token = csrf_token(old, SIGNED_IN_PAGE)
    old.post("/logout", data={"csrf_token": token})
    with app.extensions["manireports"].appdb.transaction() as db:
        ended = datetime.fromtimestamp(NOW, UTC) - timedelta(days=1, seconds=1)
        db.execute(update(WebSession).where(WebSession.revoked.is_not(None))
                   .values(expires=ended, revoked=ended))  # fmt: skip
    assert len(rows(app)) == 2
    assert sign_in(app.test_client(), "ben").status_code == 302
    assert len(rows(app)) == 2  # ana's live one and ben's new one
    assert signed_in(recent)


def test_signing_in_again_in_the_same_browser_ends_the_previous_session(app, client_as):
    client = client_as("ana")
    thief = copy_of(app, client)
    assert sign_in(client, "ana").status_code == 302
    assert signed_in(client) and not signed_in(thief)
    assert sorted(str(row.revoked_reason) for row in rows(app)) == [
        "None", "replaced by a new sign-in"]  # fmt: skip
