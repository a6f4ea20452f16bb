"""The long tables of the analytics pages, paged and sorted by the report framework.

A `TableSpec` says what a table shows (its columns, which of them sort, its default order and
the columns that make a row unique); `PageRequest.parse` reads `page`, `page_size` (50 by
default, capped at 500), `sort` and `dir` against it exactly as it does for a report, and the
rows come from `SqlRows` (the database sorts and pages) or `ListRows` (rows computed in
Python). The pages render one page of rows on the server: their rows hold forms and links.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.reports.base import Column
from common.reports.rows import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageRequest

PAGE_SIZES = (25, DEFAULT_PAGE_SIZE, 100, 250, MAX_PAGE_SIZE)


@dataclass(frozen=True)
class TableSpec:
    columns: tuple[Column, ...]
    default_sort: str
    row_key: tuple[str, ...]
    default_direction: str = "asc"

    def column(self, key: str) -> Column | None:
        return next((c for c in self.columns if c.key == key), None)

    def page_request(self, raw: Mapping[str, str]) -> PageRequest:
        """The query string's paging and sort; a bad value is a 400 naming the field."""
        return PageRequest.parse(raw, self)


@dataclass(frozen=True)
class TablePage:
    """One page of a table as a template draws it: the rows and where they sit in the whole."""

    spec: TableSpec
    rows: list[Any]
    total: int
    request: PageRequest

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.request.page_size))

    @property
    def first(self) -> int:
        return self.request.offset + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.request.offset + len(self.rows)
