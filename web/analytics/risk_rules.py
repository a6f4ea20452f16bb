"""The at-risk rules page: site admins set the site's rules and any company's; a company
manager sets their own company's, which replace the site's for its learners.

Every change goes through `common.analytics.risk_rules`, which audits it in the same transaction.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.access import capabilities as caps
from common.access.viewer import Viewer
from common.analytics.risk_rules import (
    RULE_KINDS,
    RiskInputError,
    RiskRuleMissing,
    delete_rule,
    is_company_manager,
    rule_settings,
    save_rule,
    set_rule_enabled,
)
from web.analytics.routes import bp
from web.auth.guards import current_viewer, deny, require_capability, viewer_scope, web_context
from web.navigation import add_nav_item

EDITORS = (caps.VIEW_ADMIN_DASHBOARD, caps.MANAGE_REPORTS)


class RuleActionForm(FlaskForm):
    """CSRF only: the rule's fields are read and checked by `_rule_input`."""


def _editing() -> tuple[Viewer, int | None]:
    """(viewer, company whose rules are edited; None: the site's). Admins edit the site's or
    the chosen company's; anyone else only a company they manage (audited 403 otherwise)."""
    viewer = current_viewer()
    assert viewer is not None
    scope = viewer_scope()
    if viewer.is_site_admin or viewer.can(caps.VIEW_ADMIN_DASHBOARD):
        return viewer, scope.company_id
    company = scope.company_id
    if company is None or not is_company_manager(web_context().moodle, viewer.user_id, company):
        deny(viewer, "Only site admins and company managers change at-risk rules.", company)
    return viewer, company


def _back(company: int | None):  # type: ignore[no-untyped-def]
    return redirect(url_for("analytics.risk_rules", company=company))


def _checked_post() -> None:
    if not RuleActionForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")


def _ruletype() -> str:
    ruletype = request.form.get("ruletype", "")
    if ruletype not in RULE_KINDS:
        abort(422, description=f"ruletype: must be one of {', '.join(RULE_KINDS)}")
    return ruletype


def _number(field: str, whole: bool = False) -> float:
    raw = request.form.get(field, "").strip()
    try:
        return int(raw) if whole else float(raw)
    except ValueError:
        abort(422, description=f"{field}: must be a {'whole ' if whole else ''}number")


@bp.get("/risk-rules")
@require_capability(*EDITORS)
def risk_rules():  # type: ignore[no-untyped-def]
    _, company = _editing()
    with web_context().appdb.transaction() as db:
        settings = rule_settings(db, company)
    return render_template("analytics/risk_rules.html", settings=settings, company=company,
                           form=RuleActionForm())  # fmt: skip


@bp.post("/risk-rules/save")
@require_capability(*EDITORS)
def save_risk_rule():  # type: ignore[no-untyped-def]
    viewer, company = _editing()
    _checked_post()
    ruletype = _ruletype()
    threshold, weight = _number("threshold"), int(_number("weight", whole=True))
    try:
        with web_context().appdb.transaction() as db:
            save_rule(db, actor_id=viewer.user_id, company_id=company, ruletype=ruletype,
                      threshold=threshold, weight=weight,
                      enabled=request.form.get("enabled") == "1")  # fmt: skip
    except RiskInputError as exc:
        abort(422, description=f"{exc.field}: {exc.reason}")
    flash(f"Saved the rule “{RULE_KINDS[ruletype].label}”.", "info")
    return _back(company)


@bp.post("/risk-rules/toggle")
@require_capability(*EDITORS)
def toggle_risk_rule():  # type: ignore[no-untyped-def]
    viewer, company = _editing()
    _checked_post()
    ruletype = _ruletype()
    enabled = request.form.get("enabled") == "1"
    with web_context().appdb.transaction() as db:
        set_rule_enabled(db, actor_id=viewer.user_id, company_id=company, ruletype=ruletype,
                         enabled=enabled)  # fmt: skip
    state = "enabled" if enabled else "disabled"
    flash(f"The rule “{RULE_KINDS[ruletype].label}” is {state}.", "info")
    return _back(company)


@bp.post("/risk-rules/delete")
@require_capability(*EDITORS)
def delete_risk_rule():  # type: ignore[no-untyped-def]
    viewer, company = _editing()
    _checked_post()
    ruletype = _ruletype()
    try:
        with web_context().appdb.transaction() as db:
            delete_rule(db, actor_id=viewer.user_id, company_id=company, ruletype=ruletype)
    except RiskRuleMissing:
        abort(404, description="ruletype: no rule of this kind is stored here")
    fallback = "the default" if company is None else "the site rule"
    flash(f"Removed the rule “{RULE_KINDS[ruletype].label}”; {fallback} applies.", "info")
    return _back(company)


add_nav_item("At-risk rules", "analytics.risk_rules", *EDITORS)
