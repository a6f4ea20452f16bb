"""Reading the analytics pages back: a table's cells, the pager's range, a headline figure."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _Cells(HTMLParser):
    """The rows of one table's body as lists of cell texts (and each cell's title attributes)."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.depth = 0  # > 0 inside the wanted table
        self.in_body = False
        self.rows: list[list[str]] = []
        self.titles: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            if self.depth or found.get("id") == self.table_id:
                self.depth += 1
        if not self.depth:
            return
        if tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append([])
            self.titles.append([])
        elif tag in ("td", "th") and self.in_body:
            self._cell = []
        if self._cell is not None and found.get("title"):
            self.titles[-1].append(str(found["title"]))

    def handle_endtag(self, tag: str) -> None:
        if not self.depth:
            return
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tbody":
            self.in_body = False
        elif tag == "table":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def cells(html: str, table_id: str) -> list[list[str]]:
    parser = _Cells(table_id)
    parser.feed(html)
    return parser.rows


def titles(html: str, table_id: str) -> list[list[str]]:
    parser = _Cells(table_id)
    parser.feed(html)
    return parser.titles


def page_range(html: str) -> tuple[int, int, int] | None:
    """(first, last, total) of the pager; None when the table is empty."""
    match = re.search(r'class="page-range"[^>]*>\s*[^<]*?(\d+)–(\d+) of (\d+)', html)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def total_rows(html: str) -> int:
    found = page_range(html)
    if found is None:
        assert re.search(r'class="page-range"[^>]*>\s*No ', html), "no pager on the page"
        return 0
    return found[2]


def kpi(html: str, key: str) -> str:
    pattern = (
        rf'data-key="{key}">\s*<span class="kpi-value">(.*?)</span>\s*<span class="kpi-label">'
    )
    match = re.search(pattern, html, re.S)
    assert match, f"no {key} figure on the page"
    return re.sub(r"<[^>]+>", "", match[1]).strip()
