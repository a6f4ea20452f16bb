"""Names the email pages show: companies by id (IOMAD), times in the viewer's timezone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select

from common.timezones import utc_offset_s
from web.auth.guards import current_viewer, web_context


def company_names(ids: Iterable[int]) -> dict[int, str]:
    """Each company's IOMAD name (`company #id` where there is none, e.g. plain Moodle)."""
    wanted = sorted({int(i) for i in ids})
    names = {i: f"company #{i}" for i in wanted}
    source = web_context().moodle
    if wanted and source.features().has_iomad:
        company = source.tables.company
        query = select(company.c.id, company.c.name).where(company.c.id.in_(wanted))
        with source.engine.connect() as conn:
            names.update({int(r.id): str(r.name) for r in conn.execute(query)})
    return names


def local_time(value: datetime | None) -> str:
    """``value`` (aware UTC) in the viewer's timezone, with its offset."""
    if value is None:
        return ""
    offset = utc_offset_s(current_viewer().timezone, int(value.timestamp()))
    local = value.replace(tzinfo=None) + timedelta(seconds=offset)
    sign = "+" if offset >= 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{local:%Y-%m-%d %H:%M} (UTC{sign}{hours:02d}:{minutes:02d})"
