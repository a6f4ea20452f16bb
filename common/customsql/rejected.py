"""QueryRejected: why custom SQL was refused, and where (common.customsql.validator raises it)."""

from __future__ import annotations

from common.errors import FieldError


class QueryRejected(FieldError):
    """Why the SQL was refused. ``reason`` is the whole message, where first ("line 3, column 14:
    table `config` is not one a report may read"), so every edge that shows a FieldError's reason
    shows the place too; ``problem`` is the message without the place."""

    def __init__(
        self,
        problem: str,
        line: int | None = None,
        column: int | None = None,
        *,
        name: str | None = None,
    ) -> None:
        where = f"line {line}, column {column}: " if line is not None and column is not None else ""
        super().__init__("sql", where + problem, status=422)
        self.problem = problem
        self.line = line
        self.column = column
        self.name = name
        self.args = (self.reason,)

    def __str__(self) -> str:
        return self.reason
