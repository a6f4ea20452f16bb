"""Start-up checks that turn an unreachable database into one clear line, not a traceback."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from common.db import make_engine
from common.settings import SettingsError


def require_database(variable: str, url: str, *, must_exist: bool = False) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        path = Path(parsed.database)
        if must_exist and not path.exists():
            raise SettingsError(f"{variable}: no database at {path} (run `manireports demo seed`)")
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise SettingsError(
            f"{variable}: cannot connect to {parsed.render_as_string()}: {reason}"
        ) from None
    finally:
        engine.dispose()
