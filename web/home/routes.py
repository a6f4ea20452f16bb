"""The landing page, the header's company switcher and the favicon."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException

from common.ids import parse_optional_id
from common.tenancy import VIEW, require_company, scope_for, sees_every_company
from web.auth.forms import CompanyForm
from web.auth.guards import (
    SESSION_COMPANY,
    Tenancy,
    current_viewer,
    open_to,
    optional_viewer,
    signed_in,
    web_context,
)
from web.home import header
from web.navigation import usable_in_company

bp = Blueprint("home", __name__, template_folder="templates")

bp.app_context_processor(header.header_context)
bp.add_app_template_global(header.user_link, "user_link")
bp.add_app_template_global(header.course_link, "course_link")
bp.add_app_template_global(header.company_name, "company_name")
bp.add_app_template_global(header.format_value, "format_value")
bp.add_app_template_global(header.cell, "report_cell")


@bp.get("/")
@open_to(Tenancy.PUBLIC)
def index():  # type: ignore[no-untyped-def]
    if optional_viewer() is not None:
        return redirect(url_for("dashboards.index"))
    return render_template("home/index.html")


@bp.get("/favicon.ico")
@open_to(Tenancy.PUBLIC)
def favicon():  # type: ignore[no-untyped-def]
    """Browsers ask for /favicon.ico whatever the page links: answer with the SVG icon."""
    response = send_from_directory(current_app.static_folder or "static", "favicon.svg",
                                   mimetype="image/svg+xml", max_age=86400)  # fmt: skip
    return response


@bp.post("/company/switch")
@signed_in(tenancy=Tenancy.SELF)
def switch_company():  # type: ignore[no-untyped-def]
    """The header's switcher: the company this browser's pages work on from now on (kept in
    the session; `?company=` on a page still wins for that page). Empty: a site admin's "All
    companies". Another company is an audited 403, one that does not exist a 404."""
    if not CompanyForm().validate_on_submit():
        abort(400, description="The form expired; reload the page and try again.")
    viewer = current_viewer()
    company_id = parse_optional_id(request.form.get("company"), "company")
    if company_id is None:
        session.pop(SESSION_COMPANY, None)
    else:
        scope_for(viewer, company_id, VIEW)  # not one of theirs: TenantViolation → 403
        if sees_every_company(viewer):
            require_company(web_context().moodle, company_id)
        session[SESSION_COMPANY] = company_id
    return redirect(_back_to(request.form.get("next"), company_id))


def _back_to(target: str | None, company_id: int | None) -> str:
    """The page the switch was made on, with its `?company=` replaced (a stale one would
    override the choice just made) — or the dashboards when that page is not open to the
    viewer in the new company (a plain member switching on a manager's page)."""
    home = url_for("dashboards.index")
    if not target or not target.startswith("/") or target.startswith("//"):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return home
    try:
        endpoint, _ = current_app.url_map.bind("").match(parts.path, method="GET")
    except HTTPException:
        return home
    if not usable_in_company(current_viewer(), str(endpoint), company_id):
        return home
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "company"]
    if company_id is not None and "company" in dict(parse_qsl(parts.query)):
        query.append(("company", str(company_id)))
    return urlunsplit(("", "", parts.path, urlencode(query), ""))
