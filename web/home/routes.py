"""The landing page."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for

from web.auth.guards import Tenancy, open_to, optional_viewer

bp = Blueprint("home", __name__, template_folder="templates")


@bp.get("/")
@open_to(Tenancy.PUBLIC)
def index():  # type: ignore[no-untyped-def]
    if optional_viewer() is not None:
        return redirect(url_for("dashboards.index"))
    return render_template("home/index.html")
