"""The landing page."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("home", __name__, template_folder="templates")


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    return render_template("home/index.html")
