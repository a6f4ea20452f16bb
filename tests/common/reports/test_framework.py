"""The report framework: parameters, page requests, and the two row sources paging and sorting
the same way (in SQL on SQLite and MariaDB, and in memory)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import BigInteger, Column, MetaData, String, Table, select

from common.db import make_engine
from common.errors import FieldError
from common.reports import Column as ReportColumn
from common.reports import ListRows, PageRequest, Report, ReportData, RunContext, SqlRows
from common.reports.base import present, register
from common.reports.params import choice, cohort_filter, date_from, date_to, user_search
from common.tenancy import SITE

ROWS = [
    {"id": 1, "name": "Ann", "score": 30},
    {"id": 2, "name": "ben", "score": None},
    {"id": 3, "name": "Cid", "score": 30},
    {"id": 4, "name": "Dee", "score": 90},
    {"id": 5, "name": "Eve", "score": 10},
]


class Scores(Report):
    """A report over ROWS, not registered: the framework's behaviour, nothing Moodle's."""

    type_name = "scores"
    title = "Scores"
    capabilities = ()
    columns = (ReportColumn("name", "Name"), ReportColumn("score", "Score", "int"),
               ReportColumn("note", "Note", sortable=False))  # fmt: skip
    params = (choice("days", "Days", (30, 90), 30), cohort_filter(), user_search(),
              date_from(), date_to())  # fmt: skip
    default_sort = "name"
    row_key = ("id",)

    def run(self, ctx, params):  # type: ignore[no-untyped-def]
        return ReportData(rows=ListRows([dict(r) for r in ROWS]))


REPORT = Scores()


def ids(rows):  # type: ignore[no-untyped-def]
    return [r["id"] for r in rows]


@pytest.fixture(params=["memory", "sql"])
def source(request, db_url):  # type: ignore[no-untyped-def]
    """The same five rows as ListRows and as a table read by SqlRows (SQLite and MariaDB)."""
    if request.param == "memory":
        yield ListRows([dict(r) for r in ROWS])
        return
    engine = make_engine(db_url)
    table = Table("scores", MetaData(), Column("id", BigInteger, primary_key=True),
                  Column("name", String(20)), Column("score", BigInteger))  # fmt: skip
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), ROWS)
    yield SqlRows(engine, select(table.c.id, table.c.name, table.c.score))
    engine.dispose()


def test_pages_cover_every_row_once_in_order_with_the_total(source):  # type: ignore[no-untyped-def]
    request = PageRequest(page=1, page_size=2, sort="name")
    seen = []
    for page in (1, 2, 3):
        rows, total = source.page(PageRequest(page, 2, "name", "asc"), ("id",))
        assert total == 5
        seen += ids(rows)
    assert seen == [1, 2, 3, 4, 5]  # text sorts regardless of case, on every backend
    assert source.page(PageRequest(4, 2, "name", "asc"), ("id",)) == ([], 5)  # past the end
    assert [r["id"] for batch in source.batches(request, ("id",), size=2) for r in batch] == seen


def test_ties_break_on_the_row_key_in_both_directions(source):  # type: ignore[no-untyped-def]
    up, _ = source.page(PageRequest(1, 10, "score", "asc"), ("id",))
    down, _ = source.page(PageRequest(1, 10, "score", "desc"), ("id",))
    known_up = [i for i in ids(up) if i != 2]
    known_down = [i for i in ids(down) if i != 2]
    assert known_up == [5, 1, 3, 4]  # 1 and 3 tie at 30: the row key decides
    assert known_down == [4, 1, 3, 5]
    assert sorted(ids(up)) == sorted(ids(down)) == [1, 2, 3, 4, 5]


def test_memory_rows_put_empty_values_last_either_way():
    rows = ListRows([dict(r) for r in ROWS])
    for direction in ("asc", "desc"):
        found, _ = rows.page(PageRequest(1, 10, "score", direction), ("id",))
        assert found[-1]["id"] == 2


def test_page_request_defaults_caps_and_refusals():
    assert REPORT.page_request({}) == PageRequest(1, 50, "name", "asc")
    assert REPORT.page_request({"page_size": "100000"}).page_size == 500
    assert REPORT.page_request({"sort": "score", "dir": "DESC"}).direction == "desc"
    for raw, field in (
        ({"page": "0"}, "page"), ({"page": "-1"}, "page"), ({"page": "²"}, "page"),
        ({"page": "9" * 30}, "page"), ({"page_size": "1.5"}, "page_size"),
        ({"sort": "nope"}, "sort"), ({"sort": "note"}, "sort"), ({"dir": "up"}, "dir"),
    ):  # fmt: skip
        with pytest.raises(FieldError) as caught:
            REPORT.page_request(raw)
        assert (caught.value.field, caught.value.status) == (field, 400), raw


def test_parameters_parse_or_name_the_bad_one():
    assert REPORT.parse_params({}) == {"days": 30, "cohort": None, "q": None, "from": None,
                                       "to": None}  # fmt: skip
    parsed = REPORT.parse_params({"days": "90", "cohort": "7", "q": " ann ", "from": "2026-01-31"})
    assert parsed == {"days": 90, "cohort": 7, "q": "ann", "from": date(2026, 1, 31), "to": None}
    for raw, field in (
        ({"days": "45"}, "days"), ({"cohort": "x"}, "cohort"), ({"cohort": "٣"}, "cohort"),
        ({"q": "a" * 101}, "q"), ({"from": "2026-02-30"}, "from"), ({"to": "31/01/2026"}, "to"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "to"),
    ):  # fmt: skip
        with pytest.raises(FieldError) as caught:
            REPORT.parse_params(raw)
        assert (caught.value.field, caught.value.status) == (field, 400), raw


def test_datetimes_are_shown_in_the_viewers_timezone():
    class Stamped(Scores):
        columns = (ReportColumn("name", "Name"), ReportColumn("seen", "Seen", "datetime"))

    ctx = RunContext(source=None, scope=SITE, now=0, timezone="Europe/Paris")  # type: ignore[arg-type]
    rows = present(Stamped(), [{"name": "a", "seen": 1_767_225_600}, {"name": "b", "seen": 0}],
                   ctx)  # fmt: skip
    assert rows[0]["seen"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert rows[0]["seen"].utcoffset().total_seconds() == 3600  # Paris in winter
    assert rows[1]["seen"] is None  # Moodle's 0 is "never"


def test_reports_must_use_snake_case_keys_and_known_kinds():
    with pytest.raises(ValueError, match="kind"):
        ReportColumn("x", "X", "money")

    class Bad(Scores):
        type_name = "bad_keys"
        columns = (ReportColumn("Name", "Name"),)

    with pytest.raises(ValueError, match="snake_case"):
        register(Bad)
