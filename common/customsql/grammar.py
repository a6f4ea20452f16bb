"""The SQL a report may be made of: sqlglot node kinds, SELECT and table options, functions.

Allow-lists for common.customsql.validator's walk. A node kind missing here is refused with its
name; functions are allowed by the names in common.customsql.whitelist.FUNCTION_EXAMPLES, turned
into the node kinds sqlglot's MySQL dialect makes of them.
"""

from __future__ import annotations

from functools import lru_cache

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.dialects.postgres import Postgres

from common.customsql.whitelist import FUNCTION_EXAMPLES, PG_FUNCTION_EXAMPLES

# The dialects the validator parses in: MySQL (MariaDB/MySQL sites, and the SQLite demo site,
# whose authors write MySQL) and PostgreSQL.
PARSERS = {"mysql": MySQL(), "postgres": Postgres()}
_EXAMPLES = {"mysql": FUNCTION_EXAMPLES, "postgres": PG_FUNCTION_EXAMPLES}

STATEMENT_ROOTS = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)

# Node kinds a report may contain besides functions (checked against the function allow-list),
# tables, columns, stars and placeholders (checked by name).
PLAIN_NODES: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Select,
        exp.Union,
        exp.Intersect,
        exp.Except,
        exp.Subquery,
        exp.From,
        exp.Join,
        exp.Where,
        exp.Group,
        exp.Rollup,
        exp.Having,
        exp.Order,
        exp.Ordered,
        exp.Limit,
        exp.Offset,
        exp.CTE,
        exp.TableAlias,
        exp.Alias,
        exp.Identifier,
        exp.Literal,
        exp.Null,
        exp.Boolean,
        exp.HexString,
        exp.BitString,
        exp.National,
        exp.Paren,
        exp.Tuple,
        exp.Distinct,
        exp.Neg,
        exp.Not,
        exp.BitwiseNot,
        exp.And,
        exp.Or,
        exp.Xor,
        exp.EQ,
        exp.NEQ,
        exp.NullSafeEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.Is,
        exp.In,
        exp.Between,
        exp.Like,
        exp.Escape,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Div,
        exp.IntDiv,
        exp.Mod,
        exp.BitwiseAnd,
        exp.BitwiseOr,
        exp.BitwiseXor,
        exp.BitwiseLeftShift,
        exp.BitwiseRightShift,
        exp.Case,
        exp.If,
        exp.Interval,
        exp.DataType,
        exp.DataTypeParam,
        exp.Window,
        exp.WindowSpec,
        exp.Any,
        exp.All,
        exp.Collate,
        exp.Introducer,
        exp.JSONPath,
        exp.JSONPathKey,
        exp.JSONPathRoot,
        exp.JSONPathSubscript,
        exp.JSONPathWildcard,
    }
)

# What only PostgreSQL's grammar makes: `a || b`, ILIKE, IS DISTINCT FROM, an aggregate's
# FILTER (WHERE …), AT TIME ZONE.
PG_PLAIN_NODES: frozenset[type[exp.Expr]] = PLAIN_NODES | {
    exp.DPipe,
    exp.ILike,
    exp.NullSafeNEQ,
    exp.Filter,
    exp.AtTimeZone,
}
PLAIN_BY_DIALECT = {"mysql": PLAIN_NODES, "postgres": PG_PLAIN_NODES}

# Functions that are syntax rather than a name an author looks up.
SYNTAX_FUNCTIONS: frozenset[type[exp.Expr]] = frozenset(
    {exp.Exists, exp.Case, exp.If, exp.Cast, exp.Extract, exp.Count, exp.JSONExtract}
)

# Var (a bare keyword) only where it is one: a function's unit (TIMESTAMPDIFF(DAY, …)), an
# interval unit, a collation or character set name.
VAR_PARENTS = (exp.Interval, exp.Collate, exp.DataType, exp.CharacterSet)

SELECT_ARGS = frozenset(
    {"with_", "with", "hint", "distinct", "expressions", "from_", "from", "joins", "where"}
    | {"group", "having", "windows", "order", "limit", "offset", "kind"}
)
SELECT_ARG_NAMES = {
    "into": "SELECT … INTO",
    "locks": "a locking read (FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE)",
    "operation_modifiers": "SELECT options such as SQL_CALC_FOUND_ROWS or HIGH_PRIORITY",
    "laterals": "LATERAL",
}
TABLE_ARGS = frozenset({"this", "alias", "db", "catalog", "joins"})  # joins: FROM (a JOIN b)


@lru_cache(maxsize=2)
def allowed_function_kinds(dialect: str = "mysql") -> frozenset[type[exp.Expr]]:
    """The sqlglot node kinds the allowed function names become in the dialect."""
    kinds: set[type[exp.Expr]] = set(SYNTAX_FUNCTIONS)
    for example in _EXAMPLES[dialect].values():
        tree = PARSERS[dialect].parse(f"SELECT {example}")[0]
        assert tree is not None
        for node in tree.walk():
            if isinstance(node, exp.Func) and not isinstance(node, exp.Anonymous):
                kinds.add(type(node))
    return frozenset(kinds)
