"""The layout document: what the builder may save, and how each wrong widget is named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from common.dashboardbuilder.layout import (
    GRID_COLUMNS,
    MAX_HEIGHT,
    MAX_WIDGETS,
    LayoutError,
    layout_json,
    parse_layout,
)
from common.errors import FieldError
from common.reports import Report, get_report

# A saver who may run every report but company_summary.
MAY_RUN = {"course_completion", "course_progress", "user_engagement", "quiz_attempts"}


def resolve(name: str) -> Report:
    report = get_report(name)
    if report is None:
        raise FieldError("report", f"there is no report {name!r}")
    if name not in MAY_RUN:
        raise FieldError("report", f"you may not run the report {name!r}")
    return report


def widget(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "w1", "type": "table", "report": "course_completion",
                            "filters": {"days": "90"}, "options": {"title": "Courses",
                            "columns": ["course", "completed"], "rows": 5,
                            "sort": "completed", "dir": "desc"},
                            "x": 0, "y": 0, "w": 6, "h": 4}  # fmt: skip
    base.update(changes)
    return base


def problems(layout: Any) -> list[dict[str, str]]:
    with pytest.raises(FieldError) as raised:
        parse_layout(layout if isinstance(layout, str) else json.dumps(layout), resolve)
    return [e.as_dict() for e in raised.value.errors]


def test_a_valid_layout_round_trips_exactly():
    layout = [
        widget(),
        widget(
            id="k",
            type="kpi",
            report="course_progress",
            filters={},
            options={"kpi": "completed"},
            x=6,
            y=0,
            w=3,
            h=2,
        ),  # fmt: skip
        widget(
            id="c",
            type="pie",
            report="course_progress",
            filters={"band": ""},
            options={},
            x=9,
            y=0,
            w=3,
            h=4,
        ),  # fmt: skip
    ]
    widgets = parse_layout(json.dumps(layout), resolve)
    stored = json.loads(layout_json(widgets))
    assert stored[0] == layout[0]
    assert stored[1]["options"] == {"kpi": "completed"}
    assert stored[2]["filters"] == {}  # an empty filter is no filter
    assert parse_layout(layout_json(widgets), resolve) == widgets


def test_columns_keep_the_reports_order_and_dir_needs_a_sort():
    [parsed] = parse_layout([widget(options={"columns": ["completed", "course"], "dir": "desc"})],
                            resolve)  # fmt: skip
    assert parsed.options == {"columns": ["course", "completed"], "rows": 10}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"type": "gauge"}, "widgets[1].type", "type must be one of kpi, line, bar, pie, table"),
        ({"id": "<script>"}, "widgets[1].id", "its id must be"),
        ({"report": "no_such"}, "widgets[1].report", "there is no report 'no_such'"),
        ({"report": "company_summary"}, "widgets[1].report", "you may not run"),
        ({"report": ""}, "widgets[1].report", "choose a report"),
        ({"x": -1}, "widgets[1].x", "x must be a whole number from 0 to 11"),
        ({"x": 8}, "widgets[1].w", f"x + w must be at most {GRID_COLUMNS}"),
        ({"w": 13}, "widgets[1].w", "w must be a whole number from 1 to 12"),
        ({"h": MAX_HEIGHT + 1}, "widgets[1].h", f"h must be a whole number from 1 to {MAX_HEIGHT}"),
        ({"h": 2.5}, "widgets[1].h", "whole number"),
        ({"y": True}, "widgets[1].y", "whole number"),
        ({"w": "6"}, "widgets[1].w", "whole number"),
        (
            {"filters": {"days": "45"}},
            "widgets[1].filters.days",
            "widget 1 “Courses”: filter Date range: must be one of 30, 90",
        ),
        ({"filters": {"course": "abc"}}, "widgets[1].filters.course", "filter Course:"),
        (
            {"filters": {"colour": "red"}},
            "widgets[1].filters.colour",
            "report has no filter 'colour' (its filters: days, course, cohort)",
        ),
        ({"filters": {"days": ["30"]}}, "widgets[1].filters.days", "must be text"),
        ({"filters": "days=30"}, "widgets[1].filters", "filters must be an object"),
        (
            {"options": {"columns": ["password"]}},
            "widgets[1].options.columns",
            "has no column 'password'",
        ),
        ({"options": {"sort": "nope"}}, "widgets[1].options.sort", "no sortable column 'nope'"),
        ({"options": {"rows": 0}}, "widgets[1].options.rows", "from 1 to 100"),
        ({"options": {"rows": 101}}, "widgets[1].options.rows", "from 1 to 100"),
        ({"options": {"dir": "up"}}, "widgets[1].options.dir", "asc or desc"),
        ({"options": {"title": "x" * 121}}, "widgets[1].options.title", "at most 120"),
        ({"options": {"kpi": "x"}}, "widgets[1].options.kpi", "no option 'kpi'"),
        (
            {"type": "kpi", "options": {"kpi": "DROP TABLE"}},
            "widgets[1].options.kpi",
            "the key of one of the report's figures",
        ),
        ({"colour": "red"}, "widgets[1].colour", "unknown field 'colour'"),
    ],
)
def test_each_wrong_widget_is_named_with_its_field(changes, field, words):
    found = problems([widget(**changes)])
    assert any(p["field"] == field and words in p["error"] for p in found), found
    assert all(p.get("widget") in (None, "w1") for p in found)


def test_every_problem_is_reported_at_once_with_the_widget_id():
    layout = [widget(), widget(id="w2", x=6, filters={"days": "7"}, options={"rows": 500})]
    found = problems(layout)
    assert {p["field"] for p in found} == {"widgets[2].filters.days", "widgets[2].options.rows"}
    assert {p["widget"] for p in found} == {"w2"}


@pytest.mark.parametrize(
    ("layout", "words"),
    [
        ("{not json", "not JSON"),
        ('{"widgets": []}', "must be a list of widgets"),
        ("[1]", "widget 1: must be an object"),
        (
            json.dumps([widget(id=f"w{i}", x=0, y=i * 4) for i in range(MAX_WIDGETS + 1)]),
            f"at most {MAX_WIDGETS} widgets (this one has {MAX_WIDGETS + 1})",
        ),
        ("[" + " " * 200_001 + "]", "at most 200000 characters"),
        (json.dumps([widget(), widget(id="w1", x=6)]), "the id 'w1' is used twice"),
        (json.dumps([widget(), widget(id="w2", x=3, y=2)]), "overlaps widget 1 “Courses”"),
    ],
)
def test_the_document_as_a_whole_is_checked(layout, words):
    found = problems(layout)
    assert any(words in p["error"] for p in found), found


def test_an_error_is_a_422_layout_error():
    with pytest.raises(LayoutError) as raised:
        parse_layout([widget(type="gauge")], resolve)
    assert raised.value.status == 422
    assert raised.value.widget == "w1"


def test_an_empty_layout_is_valid():
    assert parse_layout("[]", resolve) == []
    assert parse_layout("", resolve) == []
