"""Is this custom SQL one read-only SELECT over the report tables? Parse, walk once, say why not.

`validate(sql, prefix, dialect)` checks the raw text (length, NUL and bidi characters, executable
comments, a second statement), parses it in the site's dialect — sqlglot's MySQL for MariaDB,
MySQL and the SQLite demo site, its `postgres` for PostgreSQL — and walks the tree once against
allow-lists (statement and node kinds, common.customsql.whitelist's tables and functions,
credential columns); a known danger is refused with its reason (common.customsql.dangers).
PostgreSQL adds its own checks: no catalog schemas, reg*/oid casts, system columns, bare
`user`-style words, whole-row references (`SELECT u FROM {user} u` would carry the password),
and names compared as PostgreSQL folds them (unquoted lower case). What passes is a
`CheckedQuery` whose `sql_for(dialect)` prints the checked tree again — comments and hints
gone, tables prefixed — so the database runs exactly what was checked, never the author's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from common.customsql import dangers, grammar
from common.customsql.dialects import generator_for
from common.customsql.rawtext import MAX_SQL_BYTES, Scanned, scan
from common.customsql.rejected import QueryRejected
from common.customsql.whitelist import CREDENTIAL_COLUMNS, REPORT_TABLES, allowed_functions

__all__ = ["MAX_SQL_BYTES", "CheckedQuery", "QueryRejected", "validate"]

_T = exp.DataType.Type
# What a PostgreSQL report may cast to: plain values, never a catalog lookup (regclass, oid …).
_PG_CAST_TYPES = frozenset(
    {_T.TEXT, _T.VARCHAR, _T.CHAR, _T.NAME, _T.SMALLINT, _T.INT, _T.BIGINT, _T.DECIMAL}
    | {_T.FLOAT, _T.DOUBLE, _T.BOOLEAN, _T.DATE, _T.TIME, _T.TIMESTAMP, _T.TIMESTAMPTZ}
    | {_T.INTERVAL, _T.JSON, _T.JSONB}
)
_WITH_HOLDERS = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)
_CREDENTIAL_NAMES = frozenset(name for names in CREDENTIAL_COLUMNS.values() for name in names)


@dataclass(frozen=True)
class CheckedQuery:
    """A query the validator accepted, ready to print for a database."""

    source: str
    params: tuple[str, ...]
    tables: frozenset[str]
    tree: exp.Expr = field(repr=False, compare=False)
    dialect: str = "mysql"  # the dialect it was written and parsed in
    _printed: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def sql_for(self, dialect: str) -> str:
        """Executable text for "mysql", "sqlite" or "postgres": tables prefixed, comments and hints
        dropped, no trailing ';', placeholders kept as `:name` for SQLAlchemy's text()."""
        printed = self._printed.get(dialect)
        if printed is None:
            printed = generator_for(dialect)(self.tree)
            self._printed[dialect] = printed
        return printed


def validate(sql: str, prefix: str = "mdl_", dialect: str = "mysql") -> CheckedQuery:
    """The checked query, or QueryRejected naming what was refused and where. ``dialect`` is
    the one the author writes in: "mysql" or "postgres" (common.customsql.execute's
    `written_dialect(source)` gives a site's)."""
    if dialect not in grammar.PARSERS:
        raise ValueError(
            f"no SQL validator for {dialect!r}: use one of {', '.join(grammar.PARSERS)}"
        )
    return _validate(sql, prefix, dialect)


@lru_cache(maxsize=64)
def _validate(sql: str, prefix: str, dialect: str) -> CheckedQuery:
    scanned = scan(sql, dialect)
    try:
        statements = grammar.PARSERS[dialect].parse(scanned.text)
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
    walk = _Walk(scanned, prefix, dialect)
    try:
        walk.check(tree)
    except RecursionError:
        raise QueryRejected("the query is nested too deeply to check") from None
    params = tuple(name for name in scanned.params if name in walk.params)
    tables = frozenset(walk.tables)
    return CheckedQuery(source=sql, params=params, tables=tables, tree=tree, dialect=dialect)


class _Walk:
    def __init__(self, scanned: Scanned, prefix: str, dialect: str) -> None:
        self.scanned = scanned
        self.prefix = prefix.lower()
        self.dialect = dialect
        self.postgres = dialect == "postgres"
        self.tables: set[str] = set()
        self.params: set[str] = set()
        self.plain = grammar.PLAIN_BY_DIALECT[dialect]
        self.functions = grammar.allowed_function_kinds(dialect)
        self.function_names = allowed_functions(dialect)
        self.sensitive_columns: list[exp.Expr] = []
        self.hints: list[exp.Expr] = []
        # PostgreSQL: names that are a whole row when written as a column (table and subquery
        # aliases), and the bare columns to hold against them once every alias is known
        self.row_names: set[str] = set()
        self.bare_columns: list[exp.Expr] = []

    def key(self, identifier: exp.Expr | None) -> str:
        """A name as the database tells names apart: PostgreSQL folds unquoted names to lower
        case; MySQL's CTE names are compared exactly (see push_ctes)."""
        if not isinstance(identifier, exp.Identifier):
            return ""
        if self.postgres and not identifier.quoted:
            return identifier.name.lower()
        return identifier.name

    def reject(self, problem: str, node: exp.Expr | None, name: str | None = None) -> None:
        offset = None
        while node is not None and offset is None:  # a type name has no place: its cast has
            offset = _offset_of(node)
            node = node.parent
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
        for column in self.bare_columns:
            if self.key(column.this) in self.row_names:
                self.reject(
                    f"`{column.name}` alone is a whole row of its table in PostgreSQL (every "
                    "column, credentials too): name the columns you need",
                    column,
                    column.name,
                )
        for hint in self.hints:
            hint.pop()

    def visit(
        self,
        node: exp.Expr,
        ctes: frozenset[str],
        stack: list[tuple[exp.Expr, frozenset[str]]],
    ) -> frozenset[str]:
        kind = type(node)
        if kind in self.plain:
            if kind is exp.DataType and self.postgres:
                self.check_pg_type(node)
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
            if name not in self.function_names:
                self.reject_function(node, name)
        elif isinstance(node, exp.Func) and kind not in self.functions:
            self.reject_function(node, self.written_name(node) or node.sql_name())
        elif kind is exp.Parameter and self.postgres:
            name = node.sql(dialect=self.dialect)
            problem = f"`{name}` placeholders are not supported: name them, e.g. `:courseid`"
            self.reject(problem, node, name)
        elif kind in (exp.Parameter, exp.SessionParameter):
            name = node.sql(dialect=self.dialect)
            self.reject(f"variables such as `{name}` are not allowed", node, name)
        elif kind is exp.Dot:
            name = node.sql(dialect=self.dialect)
            shown = name if len(name) <= 40 else name[:37] + "…"
            self.reject(
                f"`{shown}`: a qualified function or field name is not allowed (schemas such as "
                "pg_catalog are not a report's to reach): call functions by their plain name",
                node,
                shown,
            )
        elif kind is exp.ObjectIdentifier:
            self.reject(
                f"a cast to `{node.name}` looks names up in the database catalog and is not "
                "allowed in a report",
                node,
                node.name,
            )
        elif not isinstance(node, exp.Func):
            self.reject_node(node)
        if kind is exp.Select:
            self.check_select(node, ctes)
        elif kind is exp.Subquery and self.postgres and node.alias:
            self.row_names.add(self.key(node.args["alias"].this))
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

    def reject_function(self, node: exp.Expr, name: str) -> None:
        reason = dangers.danger_of(name, self.dialect)
        why = f": it {reason}" if reason else ""
        self.reject(f"function `{name}` is not one a report may call{why}", node, name)

    def check_pg_type(self, node: exp.Expr) -> None:
        if node.this in _PG_CAST_TYPES or node.this == _T.ARRAY:
            return  # an array's element type is its own DataType node, checked in turn
        name = node.sql(dialect=self.dialect)
        self.reject(f"type `{name}` is not one a report may cast to", node, name)

    def written_name(self, node: exp.Expr) -> str | None:
        """The name as the author wrote it (sqlglot reads DATABASE() as CURRENT_SCHEMA)."""
        meta = node._meta
        if meta and "start" in meta and "end" in meta:
            return self.scanned.text[meta["start"] : meta["end"] + 1].upper()
        return None

    def reject_node(self, node: exp.Expr) -> None:
        text = node.sql(dialect=self.dialect)
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
            # named `MDL_CONFIG`, so only the very same name counts as the CTE; PostgreSQL
            # folds unquoted names, so `FROM PG_USER` is not a CTE named "PG_USER"
            alias = cte.args.get("alias")
            name = self.key(alias.this) if alias is not None else cte.alias_or_name
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
            if not isinstance(source, exp.Table) or self.key(source.this) in ctes:
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
                    f"`{star.sql(dialect=self.dialect)}` over `{table}` would read its credential "
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
            where = "another schema" if self.postgres else "another database"
            if self.postgres and _parts(table)[0].name.lower() in dangers.PG_CATALOG_SCHEMAS:
                where = "PostgreSQL's catalog"
            self.reject(
                f"table `{full}` is in {where}: a report reads only Moodle's tables",
                table,
                full,
            )
        if isinstance(table.this, exp.Func):  # FROM generate_series(…), FROM dblink(…)
            called = self.written_name(table.this) or table.this.sql_name()
            self.reject_function(table.this, called.split("(")[0].strip())
        if not isinstance(table.this, exp.Identifier):
            self.reject_node(table)
        # PostgreSQL reads a bare name as a whole row (when no column has that name) by the
        # table's alias, or without one by the name it runs under: the CTE's, or the prefixed
        aliased = self.postgres and table.alias
        if aliased:
            self.row_names.add(self.key(table.args["alias"].this))
        if self.key(table.this) in ctes:
            if self.postgres and not aliased:
                self.row_names.add(self.key(table.this))
            return
        if written.lower() == "dual" and not table.this.quoted:
            self.reject("leave out FROM DUAL", table, "dual")
        name = self.moodle_name(table)
        if name is None and self.postgres and written.lower().startswith("pg_"):
            self.reject(
                f"table `{written}` is PostgreSQL's catalog: a report reads only Moodle's tables",
                table,
                written,
            )
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
        if self.postgres and not aliased:
            self.row_names.add(self.prefix + name)

    def check_column(self, column: exp.Expr) -> None:
        if column.name.startswith("$"):
            problem = f"`{column.name}` placeholders are not supported: name them, e.g. `:courseid`"
            self.reject(problem, column, column.name)
        if column.args.get("db") or column.args.get("catalog"):
            full = ".".join(part.name for part in _parts(column))
            self.reject(f"column `{full}` names another database or table path", column, full)
        if column.name.lower() in _CREDENTIAL_NAMES:
            self.sensitive_columns.append(column)
        if self.postgres:
            self.check_pg_column(column)
        qualifier = column.args.get("table")
        braced = self.scanned.braced
        if braced and isinstance(qualifier, exp.Identifier) and _start_of(qualifier) in braced:
            column.set("table", exp.to_identifier(self.prefix + qualifier.name.lower()))

    def check_pg_column(self, column: exp.Expr) -> None:
        name = column.name.lower()
        if name in dangers.PG_SYSTEM_COLUMNS:
            self.reject(
                f"`{column.name}` is a PostgreSQL system column, not Moodle data", column, name
            )
        qualifier = column.args.get("table")
        if qualifier is None and not column.this.quoted and name in dangers.PG_SESSION_WORDS:
            self.reject(
                f"`{column.name}` is not a column in PostgreSQL: it "
                f"{dangers.PG_FUNCTIONS['CURRENT_USER']}",
                column,
                column.name,
            )
        if isinstance(column.this, exp.Star) and not _is_projection(column):
            self.reject(
                f"`{column.sql(dialect=self.dialect)}` inside an expression is every column of "
                "the table (credentials too): name the columns you need",
                column,
                column.sql(dialect=self.dialect),
            )
        if qualifier is None and isinstance(column.this, exp.Identifier):
            self.bare_columns.append(column)

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


def _is_projection(column: exp.Expr) -> bool:
    """`t.*` as one of a SELECT's own columns (checked by check_star), not inside an expression."""
    return isinstance(column.parent, exp.Select) and column.arg_key == "expressions"


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
