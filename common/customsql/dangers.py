"""Why a function, name or cast is refused: the reasons the validator gives for known dangers.

The validator works from allow-lists (common.customsql.whitelist), so anything not listed there
is refused whatever it is; this module only adds the reason for the dangerous ones, so the author
reads "reads files on the database server" rather than a bare "not allowed". Names are matched
upper-case, exactly or by family prefix (every `PG_…`, `LO_…`, `DBLINK…` function).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_FILES = "reads or writes files on the database server"
_SLEEP = "makes the database wait or spin (a denial of service)"
_SETTINGS = "reads or changes the database's settings"
_SERVER = "tells who and where the database server is"
_SESSIONS = "acts on other sessions or takes locks"
_TEXT_SQL = "runs SQL given as text, beyond the validator's reach"
_REMOTE = "connects to another database"
_TRANSACTIONS = "reads transaction ids or sends notifications"
_CATALOG = "reads the database catalog rather than Moodle's tables"

# MariaDB/MySQL (the validator's default dialect).
MYSQL_FUNCTIONS: Mapping[str, str] = MappingProxyType(
    {
        "SLEEP": _SLEEP,
        "BENCHMARK": _SLEEP,
        "LOAD_FILE": _FILES,
        "GET_LOCK": _SESSIONS,
        "RELEASE_LOCK": _SESSIONS,
        "RELEASE_ALL_LOCKS": _SESSIONS,
        "IS_FREE_LOCK": _SESSIONS,
        "IS_USED_LOCK": _SESSIONS,
        "MASTER_POS_WAIT": _SLEEP,
        "VERSION": _SERVER,
        "USER": _SERVER,
        "CURRENT_USER": _SERVER,
        "SESSION_USER": _SERVER,
        "SYSTEM_USER": _SERVER,
        "DATABASE": _SERVER,
        "SCHEMA": _SERVER,
        "CONNECTION_ID": _SERVER,
        "LAST_INSERT_ID": _SERVER,
    }
)

# PostgreSQL.
PG_FUNCTIONS: Mapping[str, str] = MappingProxyType(
    {
        "PG_SLEEP": _SLEEP,
        "PG_SLEEP_FOR": _SLEEP,
        "PG_SLEEP_UNTIL": _SLEEP,
        "PG_READ_FILE": _FILES,
        "PG_READ_BINARY_FILE": _FILES,
        "PG_LS_DIR": _FILES,
        "PG_STAT_FILE": _FILES,
        "PG_LS_LOGDIR": _FILES,
        "PG_LS_WALDIR": _FILES,
        "PG_LS_TMPDIR": _FILES,
        "PG_LS_ARCHIVE_STATUSDIR": _FILES,
        "LO_IMPORT": _FILES,
        "LO_EXPORT": _FILES,
        "PG_TERMINATE_BACKEND": _SESSIONS,
        "PG_CANCEL_BACKEND": _SESSIONS,
        "PG_ADVISORY_LOCK": _SESSIONS,
        "PG_ADVISORY_XACT_LOCK": _SESSIONS,
        "PG_TRY_ADVISORY_LOCK": _SESSIONS,
        "PG_NOTIFY": _TRANSACTIONS,
        "TXID_CURRENT": _TRANSACTIONS,
        "TXID_CURRENT_SNAPSHOT": _TRANSACTIONS,
        "PG_CURRENT_XACT_ID": _TRANSACTIONS,
        "QUERY_TO_XML": _TEXT_SQL,
        "QUERY_TO_XMLSCHEMA": _TEXT_SQL,
        "QUERY_TO_XML_AND_XMLSCHEMA": _TEXT_SQL,
        "CURSOR_TO_XML": _TEXT_SQL,
        "TABLE_TO_XML": _TEXT_SQL,
        "TABLE_TO_XMLSCHEMA": _TEXT_SQL,
        "TABLE_TO_XML_AND_XMLSCHEMA": _TEXT_SQL,
        "SCHEMA_TO_XML": _TEXT_SQL,
        "DATABASE_TO_XML": _TEXT_SQL,
        "DATABASE_TO_XMLSCHEMA": _TEXT_SQL,
        "DATABASE_TO_XML_AND_XMLSCHEMA": _TEXT_SQL,
        "XPATH": _TEXT_SQL,
        "DBLINK": _REMOTE,
        "CURRENT_SETTING": _SETTINGS,
        "SET_CONFIG": _SETTINGS,
        "VERSION": _SERVER,
        "INET_SERVER_ADDR": _SERVER,
        "INET_SERVER_PORT": _SERVER,
        "INET_CLIENT_ADDR": _SERVER,
        "INET_CLIENT_PORT": _SERVER,
        "CURRENT_USER": _SERVER,
        "SESSION_USER": _SERVER,
        "CURRENT_ROLE": _SERVER,
        "USER": _SERVER,
        "CURRENT_DATABASE": _SERVER,
        "CURRENT_CATALOG": _SERVER,
        "CURRENT_SCHEMA": _SERVER,
        "CURRENT_SCHEMAS": _SERVER,
        "HAS_TABLE_PRIVILEGE": _CATALOG,
        "HAS_DATABASE_PRIVILEGE": _CATALOG,
        "OBJ_DESCRIPTION": _CATALOG,
        "COL_DESCRIPTION": _CATALOG,
        "TO_REGCLASS": _CATALOG,
        "TO_REGPROC": _CATALOG,
        "NEXTVAL": "advances a sequence (a write)",
        "SETVAL": "sets a sequence (a write)",
        "CURRVAL": _TRANSACTIONS,
        "LASTVAL": _TRANSACTIONS,
        "GENERATE_SERIES": "makes rows out of nothing (no Moodle table), the means of a slow query",
    }
)
# Whole families: each such prefix is refused with the family's reason.
PG_PREFIXES: tuple[tuple[str, str], ...] = (
    ("PG_READ", _FILES),
    ("PG_LS_", _FILES),
    ("PG_FILE", _FILES),
    ("LO_", _FILES),
    ("PG_ADVISORY", _SESSIONS),
    ("PG_TRY_ADVISORY", _SESSIONS),
    ("PG_SLEEP", _SLEEP),
    ("DBLINK", _REMOTE),
    ("TXID_", _TRANSACTIONS),
    ("PG_", _CATALOG),
    ("HAS_", _CATALOG),
)

# PostgreSQL system columns: row versions, transaction ids and the table's oid (`tableoid`
# casts to its name), none of them Moodle data.
PG_SYSTEM_COLUMNS = frozenset({"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid"})

# Bare words PostgreSQL reads as a call (`SELECT user` is the database role), not a column.
PG_SESSION_WORDS = frozenset(
    {"user", "current_user", "session_user", "current_role", "current_catalog", "current_schema"}
)

# Catalog schemas and the type families whose casts look names up in the catalog.
PG_CATALOG_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})
PG_CATALOG_TYPE_PREFIXES = ("reg", "oid", "pg_")


def danger_of(name: str, dialect: str) -> str | None:
    """Why calling ``name`` is dangerous in ``dialect``, or None when it is not known to be."""
    upper = name.upper()
    if dialect == "postgres":
        if upper in PG_FUNCTIONS:
            return PG_FUNCTIONS[upper]
        if "_TO_XML" in upper:  # the query/table/schema/database/cursor_to_xml… family
            return _TEXT_SQL
        return next((why for prefix, why in PG_PREFIXES if upper.startswith(prefix)), None)
    return MYSQL_FUNCTIONS.get(upper)
