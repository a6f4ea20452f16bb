"""Is this custom SQL one read-only SELECT over the report tables? Parse, walk once, say why not.

`validate(sql, prefix)` checks the raw text (length, NUL and bidi characters, executable comments,
a second statement), parses it with sqlglot's MySQL dialect, and walks the tree once against
allow-lists (statement and node kinds, common.customsql.whitelist's tables and functions,
credential columns). What passes is a `CheckedQuery` whose `sql_for(dialect)` prints the checked
tree again — comments and hints gone, tables prefixed — so the database runs exactly what was
checked, never the author's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import ParseError, TokenError

from common.customsql import grammar
from common.customsql.dialects import generator_for
from common.customsql.rawtext import MAX_SQL_BYTES, Scanned, scan
from common.customsql.rejected import QueryRejected
from common.customsql.whitelist import ALLOWED_FUNCTIONS, CREDENTIAL_COLUMNS, REPORT_TABLES

__all__ = ["MAX_SQL_BYTES", "CheckedQuery", "QueryRejected", "validate"]

_MYSQL = MySQL()
_WITH_HOLDERS = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)
_CREDENTIAL_NAMES = frozenset(name for names in CREDENTIAL_COLUMNS.values() for name in names)


@dataclass(frozen=True)
class CheckedQuery:
    """A query the validator accepted, ready to print for a database."""

    source: str
    params: tuple[str, ...]
    tables: frozenset[str]
    tree: exp.Expr = field(repr=False, compare=False)
    _printed: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def sql_for(self, dialect: str) -> str:
        """Executable text for "mysql", "sqlite" or "postgres": tables prefixed, comments and hints
        dropped, no trailing ';', placeholders kept as `:name` for SQLAlchemy's text()."""
        printed = self._printed.get(dialect)
        if printed is None:
            printed = generator_for(dialect)(self.tree)
            self._printed[dialect] = printed
        return printed


def validate(sql: str, prefix: str = "mdl_") -> CheckedQuery:
    """The checked query, or QueryRejected naming what was refused and where."""
    return _validate(sql, prefix)


@lru_cache(maxsize=64)
def _validate(sql: str, prefix: str) -> CheckedQuery:
    scanned = scan(sql)
    try:
        statements = _MYSQL.parse(scanned.text)
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        near = (first.get("highlight") or "").strip()
        raise QueryRejected(
            "this is not SQL the validator can read" + (f" (near `{near}`)" if near else ""),
            line=first.get("line"),
            column=first.get("col"),
            name=near or None,
        ) from None
    except TokenError as error:
        raise QueryRejected(f"this is not SQL the validator can read ({error})") from None
    except RecursionError:
        raise QueryRejected("the query is nested too deeply to check") from None
    if len(statements) != 1 or statements[0] is None:
        raise QueryRejected("give exactly one SELECT statement", 1, 1)
    tree = statements[0]
    walk = _Walk(scanned, prefix)
    try:
        walk.check(tree)
    except RecursionError:
        raise QueryRejected("the query is nested too deeply to check") from None
    params = tuple(name for name in scanned.params if name in walk.params)
    return CheckedQuery(source=sql, params=params, tables=frozenset(walk.tables), tree=tree)


class _Walk:
    def __init__(self, scanned: Scanned, prefix: str) -> None:
        self.scanned = scanned
        self.prefix = prefix.lower()
        self.tables: set[str] = set()
        self.params: set[str] = set()
        self.functions = grammar.allowed_function_kinds()
        self.sensitive_columns: list[exp.Expr] = []
        self.hints: list[exp.Expr] = []

    def reject(self, problem: str, node: exp.Expr | None, name: str | None = None) -> None:
        offset = _offset_of(node) if node is not None else None
        if offset is None:
            raise QueryRejected(problem, name=name)
        raise QueryRejected(problem, *self.scanned.place(offset), name=name)

    def check(self, tree: exp.Expr) -> None:
        if not isinstance(tree, grammar.STATEMENT_ROOTS):
            kind = (tree.name if isinstance(tree, exp.Command) else tree.key).upper()
            if isinstance(tree, exp.Condition):
                self.reject("only a SELECT may be run; this is not a statement", tree, kind)
            self.reject(f"only a SELECT may be run; this is a {kind} statement", tree, kind)
        stack: list[tuple[exp.Expr, frozenset[str]]] = [(tree, frozenset())]
        while stack:
            node, ctes = stack.pop()
            ctes = self.visit(node, ctes, stack)
        for column in self.sensitive_columns:
            self.check_credential(column)
        for hint in self.hints:
            hint.pop()

    def visit(
        self,
        node: exp.Expr,
        ctes: frozenset[str],
        stack: list[tuple[exp.Expr, frozenset[str]]],
    ) -> frozenset[str]:
        kind = type(node)
        if kind in grammar.PLAIN_NODES:
            pass
        elif kind is exp.Table:
            self.check_table(node, ctes)
        elif kind is exp.Column:
            self.check_column(node)
        elif kind is exp.Star:
            pass
        elif kind is exp.Placeholder:
            self.check_placeholder(node)
        elif kind is exp.Hint:
            self.hints.append(node)
            return ctes
        elif kind is exp.Var:
            if not isinstance(node.parent, (exp.Func, *grammar.VAR_PARENTS)):
                self.reject(f"`{node.name}` is not allowed here", node, node.name)
        elif kind is exp.Anonymous:
            name = node.name.upper()
            if name not in ALLOWED_FUNCTIONS:
                self.reject(f"function `{name}` is not one a report may call", node, name)
        elif isinstance(node, exp.Func) and kind not in self.functions:
            name = self.written_name(node) or node.sql_name()
            self.reject(f"function `{name}` is not one a report may call", node, name)
        elif kind in (exp.Parameter, exp.SessionParameter):
            name = node.sql(dialect=_MYSQL)
            self.reject(f"variables such as `{name}` are not allowed", node, name)
        elif not isinstance(node, exp.Func):
            self.reject_node(node)
        if kind is exp.Select:
            self.check_select(node, ctes)
        elif kind is exp.Join:
            if node.args.get("method"):
                method = str(node.args["method"]).upper()
                self.reject(
                    f"{method} JOIN is not allowed: join with ON or USING", node.this, method
                )
            for used in node.args.get("using") or []:
                if used.name.lower() in _CREDENTIAL_NAMES:
                    self.sensitive_columns.append(used)
        with_ = node.args.get("with_") if kind in _WITH_HOLDERS else None
        if with_ is not None:
            ctes = self.push_ctes(with_, ctes, stack)
        for child in node.iter_expressions(reverse=True):
            if child is not with_:
                stack.append((child, ctes))
        return ctes

    def written_name(self, node: exp.Expr) -> str | None:
        """The name as the author wrote it (sqlglot reads DATABASE() as CURRENT_SCHEMA)."""
        meta = node._meta
        if meta and "start" in meta and "end" in meta:
            return self.scanned.text[meta["start"] : meta["end"] + 1].upper()
        return None

    def reject_node(self, node: exp.Expr) -> None:
        text = node.sql(dialect=_MYSQL)
        shown = text if len(text) <= 40 else text[:37] + "…"
        self.reject(f"`{shown}` ({node.key}) is not allowed in a report", node, node.key)

    def push_ctes(
        self,
        with_: exp.Expr,
        ctes: frozenset[str],
        stack: list[tuple[exp.Expr, frozenset[str]]],
    ) -> frozenset[str]:
        recursive = bool(with_.args.get("recursive"))
        for cte in with_.expressions:
            if not isinstance(cte, exp.CTE):
                self.reject_node(cte)
            # exact case: MySQL on Linux may read `mdl_config` as the table even under a CTE
            # named `MDL_CONFIG`, so only the very same name counts as the CTE
            name = cte.alias_or_name
            stack.append((cte.this, ctes | {name} if recursive else ctes))
            ctes = ctes | {name}
        return ctes

    def check_select(self, select: exp.Expr, ctes: frozenset[str]) -> None:
        for key, value in select.args.items():
            if value in (None, [], False) or key in grammar.SELECT_ARGS:
                continue
            label = grammar.SELECT_ARG_NAMES.get(key, key)
            self.reject(f"{label} is not allowed in a report", select, key)
        if not select.expressions:
            self.reject("a SELECT needs at least one column", select, "SELECT")
        if isinstance(select.parent, exp.Exists):
            return
        for projection in select.expressions:
            if isinstance(projection, exp.Star):
                qualifier = None
            elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                qualifier = projection.table.lower()
            else:
                continue
            self.check_star(select, projection, qualifier, ctes)

    def check_star(
        self,
        select: exp.Expr,
        star: exp.Expr,
        qualifier: str | None,
        ctes: frozenset[str],
    ) -> None:
        for source in _sources(select):
            if not isinstance(source, exp.Table) or source.name in ctes:
                continue
            if source.args.get("db") or source.args.get("catalog"):
                continue
            if qualifier is not None and qualifier not in (
                source.alias_or_name.lower(),
                source.name.lower(),
            ):
                continue
            table = self.moodle_name(source)
            credentials = CREDENTIAL_COLUMNS.get(table or "")
            if credentials:
                listed = ", ".join(sorted(credentials))
                self.reject(
                    f"`{star.sql(dialect=_MYSQL)}` over `{table}` would read its credential "
                    f"column(s) {listed}: list the columns you need instead",
                    star,
                    table,
                )

    def moodle_name(self, table: exp.Expr) -> str | None:
        """The unprefixed Moodle name a table reference means, or None when it means none."""
        identifier = table.this
        if not isinstance(identifier, exp.Identifier):
            return None
        written = identifier.name.lower()
        if self.scanned.braced and _start_of(identifier) in self.scanned.braced:
            return written
        if written.startswith("prefix_"):
            return written[len("prefix_") :]
        if self.prefix and written.startswith(self.prefix):
            return written[len(self.prefix) :]
        if not self.prefix:
            return written
        return None

    def check_table(self, table: exp.Expr, ctes: frozenset[str]) -> None:
        for key, value in table.args.items():
            if value in (None, [], False) or key in grammar.TABLE_ARGS:
                continue
            self.reject(
                f"table option `{key}` is not allowed in a report", table, table.name or key
            )
        written = table.name
        if table.args.get("db") or table.args.get("catalog"):
            full = ".".join(part.name for part in _parts(table))
            self.reject(
                f"table `{full}` is in another database: a report reads only Moodle's tables",
                table,
                full,
            )
        if not isinstance(table.this, exp.Identifier):
            self.reject_node(table)
        if written in ctes:
            return
        if written.lower() == "dual" and not table.this.quoted:
            self.reject("leave out FROM DUAL", table, "dual")
        name = self.moodle_name(table)
        if name is None:
            self.reject(
                f"table `{written}` is not a Moodle table name: write {{{written}}} or "
                f"{self.prefix}{written}",
                table,
                written,
            )
        assert name is not None
        if name not in REPORT_TABLES:
            self.reject(f"table `{name}` is not one a report may read", table, name)
        self.tables.add(name)
        table.set("this", exp.to_identifier(self.prefix + name))

    def check_column(self, column: exp.Expr) -> None:
        if column.name.startswith("$"):
            problem = f"`{column.name}` placeholders are not supported: name them, e.g. `:courseid`"
            self.reject(problem, column, column.name)
        if column.args.get("db") or column.args.get("catalog"):
            full = ".".join(part.name for part in _parts(column))
            self.reject(f"column `{full}` names another database or table path", column, full)
        if column.name.lower() in _CREDENTIAL_NAMES:
            self.sensitive_columns.append(column)
        qualifier = column.args.get("table")
        braced = self.scanned.braced
        if braced and isinstance(qualifier, exp.Identifier) and _start_of(qualifier) in braced:
            column.set("table", exp.to_identifier(self.prefix + qualifier.name.lower()))

    def check_credential(self, column: exp.Expr) -> None:
        name = column.name.lower()
        owners = sorted(
            table for table in self.tables if name in CREDENTIAL_COLUMNS.get(table, frozenset())
        )
        if owners:
            which = ", ".join(f"{table}.{name}" for table in owners)
            self.reject(
                f"column `{column.name}` is a credential ({which}) and may not be read",
                column,
                name,
            )

    def check_placeholder(self, node: exp.Expr) -> None:
        name = node.this if isinstance(node.this, str) else ""
        if not name:
            self.reject(
                "`?` placeholders are not supported: name them, e.g. `:courseid`", node, "?"
            )
        self.params.add(name)


def _parts(node: exp.Expr) -> list[exp.Expr]:
    keys = ("catalog", "db", "table", "this")
    return [node.args[key] for key in keys if isinstance(node.args.get(key), exp.Expr)]


def _sources(select: exp.Expr) -> list[exp.Expr]:
    """What a SELECT reads from directly: its FROM, its joins, and joins in parentheses."""
    from_ = select.args.get("from_") or select.args.get("from")
    pending = ([from_.this] if from_ is not None else []) + [
        join.this for join in select.args.get("joins") or []
    ]
    found = []
    while pending:
        source = pending.pop()
        if isinstance(source, exp.Subquery) and not isinstance(
            source.this, exp.Select | exp.SetOperation
        ):
            # FROM (a JOIN b) or ((…) AS t JOIN b): parentheses around tables, not a derived
            # table (sqlglot's compiled build nests these as a Subquery of a Subquery)
            pending.append(source.this)
            continue
        found.append(source)
        pending.extend(join.this for join in source.args.get("joins") or [])
    return found


def _start_of(identifier: exp.Expr) -> int | None:
    meta = identifier._meta
    return meta.get("start") if meta else None


def _offset_of(node: exp.Expr) -> int | None:
    """Where a node starts in the text: the earliest token sqlglot kept a position for."""
    starts = [
        int(inner._meta["start"]) for inner in node.walk() if inner._meta and "start" in inner._meta
    ]
    return min(starts) if starts else None
