"""The app shell: security headers, CSRF on forms, /healthz."""

from common.nats_server import EmbeddedNatsServer
from tests.support import make_settings
from web.app import create_app


def test_security_headers_on_every_page(app):
    response = app.test_client().get("/login")
    assert response.status_code == 200
    headers = response.headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"


def test_every_post_form_route_needs_csrf(app, client_as):
    client = client_as("admin")
    posts = [r.rule for r in app.url_map.iter_rules() if "POST" in r.methods and "<" not in r.rule]
    assert "/login" in posts and "/logout" in posts
    exempt = {"/login"}  # signing in starts a session; its own test sends no token
    for path in set(posts) - exempt:
        response = client.post(path, data={})
        if path.startswith("/api/"):
            # Bearer-token API: no cookie authenticates it, so CSRF cannot apply; no token → 401.
            assert response.status_code == 401, f"{path} accepted a POST without a token"
            continue
        view = app.view_functions[next(r.endpoint for r in app.url_map.iter_rules()
                                       if r.rule == path and "POST" in r.methods)]  # fmt: skip
        # Machine calls (Tenancy.SIGNED) prove themselves otherwise: without that proof, 401.
        refused = (400, 401, 403) if getattr(view, "tenancy", None) == "signed" else (400, 403)
        assert response.status_code in refused, f"{path} accepted a POST without CSRF token"


def test_healthz_reports_each_dependency(app):
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "checks": {"appdb": "ok", "moodle": "ok", "bus": "ok"},
    }


def test_healthz_is_503_when_the_bus_is_down(tmp_path):
    server = EmbeddedNatsServer(tmp_path / "nats").start()
    port = server.port
    server.stop()  # nothing listens there now
    settings = make_settings(tmp_path, NATS_URL=f"nats://127.0.0.1:{port}")
    app = create_app(settings)
    try:
        response = app.test_client().get("/healthz")
    finally:
        app.extensions["manireports"].close()
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["appdb"] == "ok"
    assert body["checks"]["bus"].startswith("error")
