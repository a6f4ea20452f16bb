"""The at-risk rules page: site admins set the site's rules and any company's; a company
manager sets their own company's, which replace the site's for its learners.

Every change goes through `common.analytics.risk_rules`, which audits it in the same transaction.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.access import capabilities as caps
from common.analytics.risk_rules import (
    RULE_KINDS,
    delete_rule,
    rule_settings,
    save_rule,
    set_rule_enabled,
)
from common.errors import FieldError, raise_all
from web.analytics.routes import bp
from web.auth.guards import (
    Tenancy,
    chosen_company_id,
    current_viewer,
    request_scope,
    signed_in,
    web_context,
)
from web.navigation import add_nav_item

EDITORS = (caps.VIEW_ADMIN_DASHBOARD, caps.MANAGE_REPORTS)


class RuleActionForm(FlaskForm):
    """CSRF only: the rule's fields are read and checked by `_rule_input`."""


def _company() -> int | None:
    """Whose rules are edited: the site's (None: a site admin with no company chosen, or
    `?company=0`) or one company's — a company the viewer manages, as `scope_for(..., MANAGE)`
    decides. A manager of several companies who chose none works on the one the header shows
    (never on the site's rules, which only a site admin may change)."""
    scope = request_scope()
    if scope.company_id is not None:
        return scope.company_id or None
    if scope.company_ids is None:
        return None
    return chosen_company_id()


def _back(company: int | None):  # type: ignore[no-untyped-def]
    return redirect(url_for("analytics.risk_rules", company=company))


def _checked_post() -> None:
    if not RuleActionForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")


def _ruletype() -> str:
    ruletype = request.form.get("ruletype", "")
    if ruletype not in RULE_KINDS:
        raise FieldError("ruletype", f"must be one of {', '.join(RULE_KINDS)}")
    return ruletype


def _number(field: str, whole: bool = False) -> float:
    raw = request.form.get(field, "").strip()
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        raise FieldError(field, f"must be a {'whole ' if whole else ''}number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise FieldError(field, "must be a finite number")
    return value


@bp.get("/risk-rules")
@signed_in(*EDITORS, tenancy=Tenancy.MANAGE)
def risk_rules():  # type: ignore[no-untyped-def]
    return _page(_company())


def _page(company: int | None, typed: dict[str, str] | None = None,
          errors: list[FieldError] | None = None, status: int = 200):  # type: ignore[no-untyped-def]  # fmt: skip
    """The rules page; after a refused save, that rule's row shows what was typed with each
    problem beside its field."""
    with web_context().appdb.transaction() as db:
        settings = rule_settings(db, company)
    problems = {e.field: e.reason for e in errors or []}
    label = RULE_KINDS[typed["ruletype"]].label if typed else ""
    return render_template("analytics/risk_rules.html", settings=settings, company=company,
                           form=RuleActionForm(), typed=typed, problems=problems,
                           typed_label=label), status  # fmt: skip


@bp.post("/risk-rules/save")
@signed_in(*EDITORS, tenancy=Tenancy.MANAGE)
def save_risk_rule():  # type: ignore[no-untyped-def]
    company = _company()
    _checked_post()
    ruletype = _ruletype()
    typed = {f: request.form.get(f, "").strip()[:40] for f in ("threshold", "weight", "enabled")}
    typed["ruletype"] = ruletype
    errors: list[FieldError] = []
    numbers: dict[str, float] = {}
    for field, whole in (("threshold", False), ("weight", True)):
        try:
            numbers[field] = _number(field, whole=whole)
        except FieldError as exc:
            errors.extend(exc.errors)
    try:
        raise_all(errors)
        with web_context().appdb.transaction() as db:
            save_rule(db, actor_id=current_viewer().user_id, company_id=company,
                      ruletype=ruletype, threshold=numbers["threshold"],
                      weight=int(numbers["weight"]),
                      enabled=typed["enabled"] == "1")  # fmt: skip
    except FieldError as exc:
        return _page(company, typed, exc.errors, 422)
    flash(f"Saved the rule “{RULE_KINDS[ruletype].label}”.", "info")
    return _back(company)


@bp.post("/risk-rules/toggle")
@signed_in(*EDITORS, tenancy=Tenancy.MANAGE)
def toggle_risk_rule():  # type: ignore[no-untyped-def]
    company = _company()
    _checked_post()
    ruletype = _ruletype()
    enabled = request.form.get("enabled") == "1"
    with web_context().appdb.transaction() as db:
        set_rule_enabled(db, actor_id=current_viewer().user_id, company_id=company,
                         ruletype=ruletype, enabled=enabled)  # fmt: skip
    state = "enabled" if enabled else "disabled"
    flash(f"The rule “{RULE_KINDS[ruletype].label}” is {state}.", "info")
    return _back(company)


@bp.post("/risk-rules/delete")
@signed_in(*EDITORS, tenancy=Tenancy.MANAGE)
def delete_risk_rule():  # type: ignore[no-untyped-def]
    company = _company()
    _checked_post()
    ruletype = _ruletype()
    with web_context().appdb.transaction() as db:
        delete_rule(db, actor_id=current_viewer().user_id, company_id=company, ruletype=ruletype)
    fallback = "the default" if company is None else "the site rule"
    flash(f"Removed the rule “{RULE_KINDS[ruletype].label}”; {fallback} applies.", "info")
    return _back(company)


add_nav_item("At-risk rules", "analytics.risk_rules", *EDITORS, group="Analytics")
