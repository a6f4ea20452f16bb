"""Flask app factory: settings, CSRF, security headers and one blueprint per area."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from common.settings import Settings, load_settings
from web.context import WebContext
from web.converters import IdConverter
from web.humanize import install_filters
from web.metrics.routes import install_metrics
from web.runs.execution import install as install_run_limit
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
    if settings.trusted_proxies:
        # Behind N proxies the client is the Nth address from the right of X-Forwarded-For;
        # without proxies the header is anyone's to forge, so it is ignored. X-Forwarded-Prefix
        # serves the app under a path of Moodle's host (deploy/nginx-moodle-path.conf).
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_prefix=n)  # type: ignore[method-assign]
    app.url_map.converters["id"] = IdConverter
    app.extensions["manireports"] = context or WebContext.build(settings)
    install_run_limit(app, settings, app.extensions["manireports"].bus_client)
    csrf.init_app(app)
    install_security_headers(app)
    install_metrics(app)
    _register_blueprints(app)
    _register_template_context(app)
    install_filters(app)
    _register_error_pages(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from web.account.routes import bp as account_bp
    from web.analytics.routes import bp as analytics_bp
    from web.api.routes import bp as api_v1_bp
    from web.api.tokens import bp as api_tokens_bp
    from web.audit.routes import bp as audit_bp
    from web.auth.routes import bp as auth_bp
    from web.callbacks.routes import bp as callbacks_bp
    from web.classroom.routes import bp as classroom_bp
    from web.customreports.routes import bp as customreports_bp
    from web.dashboardbuilder.routes import bp as dashboardbuilder_bp
    from web.dashboards.routes import bp as dashboards_bp
    from web.email_offload.routes import bp as email_offload_bp
    from web.email_offload.template_editor import bp as email_templates_bp
    from web.health.routes import bp as health_bp
    from web.home.routes import bp as home_bp
    from web.hrsync.routes import bp as hrsync_bp
    from web.identity.routes import bp as identity_bp
    from web.jobs.routes import bp as jobs_bp
    from web.metrics.routes import bp as metrics_bp
    from web.people.routes import bp as people_bp
    from web.privacy.routes import bp as privacy_bp
    from web.reportbuilder.routes import bp as reportbuilder_bp
    from web.reports.routes import bp as reports_bp
    from web.runs.routes import bp as runs_bp
    from web.scheduler.routes import bp as scheduler_bp
    from web.schedules.routes import bp as schedules_bp
    from web.tracking.routes import bp as tracking_bp
    from web.unenroll.routes import bp as unenroll_bp
    from web.unsubscribe.routes import bp as unsubscribe_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(home_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(dashboards_bp)
    app.register_blueprint(dashboardbuilder_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(reportbuilder_bp)
    app.register_blueprint(runs_bp)
    app.register_blueprint(schedules_bp)
    app.register_blueprint(customreports_bp)
    app.register_blueprint(audit_bp)
    app.register_blueprint(tracking_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(analytics_bp)
    app.register_blueprint(callbacks_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(people_bp)
    app.register_blueprint(email_offload_bp)
    app.register_blueprint(email_templates_bp)
    app.register_blueprint(api_tokens_bp)
    app.register_blueprint(unsubscribe_bp)
    app.register_blueprint(privacy_bp)
    app.register_blueprint(scheduler_bp)
    app.register_blueprint(hrsync_bp)
    app.register_blueprint(unenroll_bp)
    app.register_blueprint(identity_bp)
    app.register_blueprint(classroom_bp)
    # Bearer tokens, no cookies: a cross-site page cannot make the browser send the token.
    csrf.exempt(api_v1_bp)
    app.register_blueprint(api_v1_bp)


def _register_template_context(app: Flask) -> None:
    from web.auth.forms import CompanyForm, LogoutForm
    from web.auth.guards import optional_viewer
    from web.navigation import nav_for

    @app.context_processor
    def _viewer_context():  # type: ignore[no-untyped-def]
        viewer = optional_viewer()
        return {
            "viewer": viewer,
            "nav_items": nav_for(viewer),
            "logout_form": LogoutForm(),
            "company_form": CompanyForm(),
        }


def _register_error_pages(app: Flask) -> None:
    from web.errors import install_error_handlers

    install_error_handlers(app)
