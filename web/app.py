"""Flask app factory: settings, CSRF, security headers and one blueprint per area."""

from __future__ import annotations

from flask import Flask, render_template
from flask_wtf.csrf import CSRFProtect

from common.settings import Settings, load_settings
from web.context import WebContext
from web.security import install_security_headers

csrf = CSRFProtect()


def create_app(settings: Settings | None = None, context: WebContext | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
    )
    app.extensions["manireports"] = context or WebContext.build(settings)
    csrf.init_app(app)
    install_security_headers(app)
    _register_blueprints(app)
    _register_error_pages(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from web.health.routes import bp as health_bp
    from web.home.routes import bp as home_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(home_bp)


def _register_error_pages(app: Flask) -> None:
    for status, title in ((400, "Bad request"), (403, "Forbidden"), (404, "Not found")):

        def page(error, status=status, title=title):  # type: ignore[no-untyped-def]
            message = getattr(error, "description", title)
            return render_template("error.html", status=status, title=title, message=message), status

        app.register_error_handler(status, page)
