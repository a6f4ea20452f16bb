"""Every report by name: the registered (prebuilt) reports first, then stored custom reports
as `custom_<id>`. Whatever takes a report name — the pages, data endpoint, exports, CLI and
JSON API — looks it up here, so a stored report is a report like any other."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from common.customreports.stored_report import StoredReport, report_id_of
from common.models.custom import CustomReport
from common.reports import Report, get_report, registered_reports

if TYPE_CHECKING:
    from common.appdb import AppDB


def find_report(name: str, appdb: AppDB | None) -> Report | None:
    """The report named `name`, or None (no such report, or no app DB to look in)."""
    found = get_report(name)
    if found is not None or appdb is None:
        return found
    report_id = report_id_of(name)
    if report_id is None:
        return None
    with appdb.transaction() as session:
        row = session.get(CustomReport, report_id)
    return None if row is None else StoredReport.of(row)


def stored_reports(appdb: AppDB) -> list[Report]:
    """Every stored report, by title."""
    with appdb.transaction() as session:
        rows = session.scalars(select(CustomReport).order_by(CustomReport.title, CustomReport.id))
        return [StoredReport.of(row) for row in rows]


def all_reports(appdb: AppDB | None) -> list[Report]:
    """The registered reports in registry order, then the stored ones by title."""
    registered = registered_reports()
    return registered if appdb is None else [*registered, *stored_reports(appdb)]
