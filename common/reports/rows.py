"""A report's rows as a source the framework pages, sorts and streams.

`SqlRows` leaves sorting and paging to the database (a 100,000-row report pages as fast as
its query; with `KeyedPaging`, pages after the first cost only their own rows); `ListRows`
holds rows computed in Python (a few hundred courses or activities). Every sort ends with the
report's row key, so pages never overlap or skip a row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Select, String, func, select
from sqlalchemy.engine import Engine

from common.errors import FieldError
from common.reports.snapshots import SNAPSHOTS, RowOrder

if TYPE_CHECKING:
    from common.reports.base import Column

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
EXPORT_BATCH = 2000
_TOTAL = "_total_rows"


class SortableTable(Protocol):
    """What paging needs of a table: a report, or a page's own table (common/analytics)."""

    @property
    def default_sort(self) -> str: ...

    @property
    def default_direction(self) -> str: ...

    def column(self, key: str) -> Column | None: ...

    @property
    def columns(self) -> tuple[Column, ...]: ...


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    sort: str = ""
    direction: str = "asc"

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    @classmethod
    def parse(cls, raw: Mapping[str, str], report: SortableTable) -> PageRequest:
        """`page` (from 1), `page_size` (capped at MAX_PAGE_SIZE), `sort` (a sortable column
        key) and `dir` (asc|desc); anything else is a 400 naming the field."""
        page = _positive(raw.get("page"), "page", 1)
        size = min(_positive(raw.get("page_size"), "page_size", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        sort = (raw.get("sort") or "").strip() or report.default_sort
        column = report.column(sort)
        if column is None or not column.sortable:
            keys = ", ".join(c.key for c in report.columns if c.sortable)
            reason = f"{sort[:40]!r} is not a sortable column ({keys})"
            raise FieldError("sort", reason, status=400)
        direction = (raw.get("dir") or "").strip().lower()
        if direction == "":
            direction = report.default_direction if sort == report.default_sort else "asc"
        if direction not in ("asc", "desc"):
            raise FieldError("dir", "must be asc or desc", status=400)
        return cls(page, size, sort, direction)


def _positive(raw: str | None, name: str, default: int) -> int:
    if raw is None or str(raw).strip() == "":
        return default
    text = str(raw).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise FieldError(name, f"{text[:40]!r} is not a whole number from 1", status=400)
    return int(text)


class RowSource(ABC):
    @abstractmethod
    def page(
        self, request: PageRequest, row_key: Sequence[str]
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of rows in the requested order, and how many rows there are in all."""

    @abstractmethod
    def batches(
        self, request: PageRequest, row_key: Sequence[str], size: int = EXPORT_BATCH
    ) -> Iterator[list[dict[str, Any]]]:
        """Every row in the requested order, `size` at a time."""


@dataclass(frozen=True)
class KeyedPaging:
    """Pages of a long report without computing every row's costly columns on each page.

    `ids` name the columns that identify a row; `rows_for(ids)` gives the full query narrowed
    to those rows, with the values of its extra bind parameters. `keys`, if any, selects the
    same rows as the full query with only its cheap columns (and the ids): ordering by one of
    them needs no figures. `identity` is what the rows depend on besides the scope (the
    report's filters).

    The first page orders every row once — on `keys` when the sort allows, on the full query
    otherwise — and keeps their ids (common/reports/snapshots.py); each page then computes its
    own rows only: a 100,000-row progress report works out 50 rows' figures per page.
    """

    keys: Select | None  # type: ignore[type-arg]
    ids: tuple[str, ...]
    rows_for: Callable[[list[tuple[int, ...]]], tuple[Select, dict[str, Any]]]  # type: ignore[type-arg]
    identity: Hashable

    def sorts_by(self, key: str) -> bool:
        return self.keys is not None and key in self.keys.selected_columns


class SqlRows(RowSource):
    """A SELECT whose labelled columns are the report's column keys (plus any `*_id` the
    rows carry for links), already scoped; run with `values` for its bind parameters."""

    def __init__(
        self,
        engine: Engine,
        query: Select,  # type: ignore[type-arg]
        values: Mapping[str, Any] | None = None,
        keyed: KeyedPaging | None = None,
    ):
        self.engine = engine
        self.query = query
        self.values = dict(values or {})
        self.keyed = keyed

    def _ordered(self, query: Select, request: PageRequest, row_key: Sequence[str]) -> Select:  # type: ignore[type-arg]
        return query.order_by(None).order_by(*self._order(query, request, row_key))

    def _order(self, query: Select, request: PageRequest, row_key: Sequence[str]) -> list[Any]:  # type: ignore[type-arg]
        columns = query.selected_columns
        dialect = self.engine.dialect.name
        order = []
        for key in (request.sort, *[k for k in row_key if k != request.sort]):
            column = columns[key]
            # Text sorts without regard to case, as MariaDB's default collation and ListRows
            # do (PostgreSQL's C/ICU collations are case-sensitive).
            if isinstance(column.type, String) and dialect == "sqlite":
                column = column.collate("NOCASE")
            elif isinstance(column.type, String) and dialect == "postgresql":
                column = func.lower(column)
            descending = request.direction == "desc" and key == request.sort
            ordered = column.desc() if descending else column.asc()
            if dialect == "postgresql":  # NULL is the smallest value, as on MariaDB and SQLite
                ordered = ordered.nulls_last() if descending else ordered.nulls_first()
            order.append(ordered)
        return order

    def page(
        self, request: PageRequest, row_key: Sequence[str]
    ) -> tuple[list[dict[str, Any]], int]:
        if self.keyed is not None:
            return self._keyed_page(self.keyed, request, row_key)
        # The total rides along as a window count: one pass computes the page and its total.
        counted = self._ordered(self.query, request, row_key).add_columns(
            func.count().over().label(_TOTAL)
        )
        with self.engine.connect() as conn:
            found = [dict(r._mapping) for r in conn.execute(
                counted.limit(request.page_size).offset(request.offset), self.values)]  # fmt: skip
            if found:
                total = int(found[0][_TOTAL])
            else:  # past the last page: count on its own
                inner = self.query.order_by(None).subquery()
                total = int(conn.scalar(select(func.count()).select_from(inner), self.values) or 0)
        for row in found:
            del row[_TOTAL]
        return found, total

    def _keyed_page(
        self, keyed: KeyedPaging, request: PageRequest, row_key: Sequence[str]
    ) -> tuple[list[dict[str, Any]], int]:
        # The engine too: one process may read several sites (tests, the CLI).
        snapshot = (self.engine, request.sort, request.direction, keyed.identity)
        order = None if request.page == 1 else SNAPSHOTS.get(self.query, snapshot)
        with self.engine.connect() as conn:
            if order is None:
                source = (
                    keyed.keys
                    if keyed.keys is not None and keyed.sorts_by(request.sort)
                    else self.query
                )
                # Only the ids leave the database: numbered in the page's order, then sorted
                # by that number.
                position = func.row_number().over(order_by=self._order(source, request, row_key))
                numbered = source.order_by(None).add_columns(position.label("_position"))
                inner = numbered.subquery()
                ordered = select(*(inner.c[c] for c in keyed.ids)).order_by(inner.c._position)
                order = RowOrder.of(conn.execute(ordered, self.values), len(keyed.ids))
                SNAPSHOTS.put(self.query, snapshot, order)
            window = order.window(request.offset, request.page_size)
            if not window:
                return [], order.total
            # A row gone since the order was taken (unenrolled just now) is left out rather
            # than shown half empty.
            query, extra = keyed.rows_for(window)
            result = conn.execute(query, {**self.values, **extra}).mappings()
            full = {tuple(int(r[c]) for c in keyed.ids): dict(r) for r in result}
        return [full[ids] for ids in window if ids in full], order.total

    def batches(
        self, request: PageRequest, row_key: Sequence[str], size: int = EXPORT_BATCH
    ) -> Iterator[list[dict[str, Any]]]:
        query = self._ordered(self.query, request, row_key)
        with self.engine.connect() as conn:
            streamed = conn.execution_options(stream_results=True, yield_per=size)
            result = streamed.execute(query, self.values)
            for part in result.mappings().partitions(size):
                yield [dict(r) for r in part]


class ListRows(RowSource):
    """Rows computed in Python; sorted with empty values last whichever the direction."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def _sorted(self, request: PageRequest, row_key: Sequence[str]) -> list[dict[str, Any]]:
        ordered = sorted(self.rows, key=lambda r: tuple(_sortable(r.get(k)) for k in row_key))
        ordered.sort(key=lambda r: _sortable(r.get(request.sort)),
                     reverse=request.direction == "desc")  # fmt: skip
        # Empty values go last in both directions.
        return [r for r in ordered if r.get(request.sort) is not None] + [
            r for r in ordered if r.get(request.sort) is None
        ]

    def page(
        self, request: PageRequest, row_key: Sequence[str]
    ) -> tuple[list[dict[str, Any]], int]:
        ordered = self._sorted(request, row_key)
        window = ordered[request.offset : request.offset + request.page_size]
        return [dict(r) for r in window], len(ordered)

    def batches(
        self, request: PageRequest, row_key: Sequence[str], size: int = EXPORT_BATCH
    ) -> Iterator[list[dict[str, Any]]]:
        ordered = self._sorted(request, row_key)
        for start in range(0, len(ordered), size):
            yield [dict(r) for r in ordered[start : start + size]]


def _sortable(value: Any) -> tuple[int, Any]:
    """A key that orders None, numbers and text without comparing across types."""
    if value is None:
        return (0, 0)
    if isinstance(value, str):
        return (2, value.casefold())
    return (1, value)
