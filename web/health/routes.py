"""`/healthz`: is this web replica able to serve? Checks both databases and the bus."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from web.auth.guards import Tenancy, open_to

bp = Blueprint("health", __name__)


def _check(fn) -> str:  # type: ignore[no-untyped-def]
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is the health page
        return f"error: {str(exc).splitlines()[0][:200]}"
    return "ok"


@bp.get("/healthz")
@open_to(Tenancy.PUBLIC)
def healthz():  # type: ignore[no-untyped-def]
    ctx = current_app.extensions["manireports"]

    def moodle() -> None:
        with ctx.moodle.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def bus() -> None:
        if not ctx.bus_client.bus().nc.is_connected:
            raise RuntimeError("bus disconnected")

    checks = {"appdb": _check(ctx.appdb.ping), "moodle": _check(moodle), "bus": _check(bus)}
    healthy = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if healthy else "degraded", checks=checks), 200 if healthy else 503
