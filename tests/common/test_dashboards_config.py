"""Every dashboard widget names what its report really has: a misnamed sort or column would
otherwise show the wrong order or an empty table without any error."""

import pytest

from common.dashboards import DASHBOARDS
from common.reports import get_report

WIDGETS = [(d.role, w) for d in DASHBOARDS for w in d.widgets]


@pytest.mark.parametrize(("role", "widget"), WIDGETS, ids=[f"{r}-{w.key}" for r, w in WIDGETS])
def test_widget_names_its_reports_columns(role, widget):
    report = get_report(widget.report)
    assert report is not None, f"{role}: no report {widget.report}"
    keys = {c.key for c in report.columns}
    if widget.sort is not None:
        assert report.column(widget.sort) is not None and report.column(widget.sort).sortable
    if widget.show == "table" and widget.only is not None:
        assert set(widget.only) <= keys, set(widget.only) - keys
