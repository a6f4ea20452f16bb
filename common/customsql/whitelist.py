"""What a custom SQL report may read: the Moodle tables, the columns refused by name, the functions.

Allow-lists, not deny-lists: a table, column-bearing `*` or function that is not named here is
refused by the validator (common/customsql/validator.py). Table names are unprefixed Moodle names
as in common/moodle/schema.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Moodle tables useful for reporting. Left out on purpose: config, config_plugins (site secrets,
# SMTP passwords), external_tokens, external_services* (web-service access), sessions (session
# data), user_private_key, email (local_email: sent message bodies, which carry new passwords),
# and every manireports_* table (the app's own, not Moodle's).
REPORT_TABLES: frozenset[str] = frozenset(
    {
        # people and their profile fields
        "user",
        "user_info_data",
        "user_info_field",
        "user_lastaccess",
        "cohort",
        "cohort_members",
        # courses, structure, enrolment, roles
        "course",
        "course_categories",
        "course_sections",
        "course_modules",
        "modules",
        "context",
        "enrol",
        "user_enrolments",
        "role",
        "role_assignments",
        "groups",
        "groups_members",
        # completion and grades
        "course_completions",
        "course_completion_criteria",
        "course_completion_crit_compl",
        "course_modules_completion",
        "course_modules_viewed",
        "grade_items",
        "grade_grades",
        # activities
        "quiz",
        "quiz_attempts",
        "quiz_grades",
        "scorm",
        "scorm_scoes",
        "scorm_scoes_track",
        "scorm_attempt",
        "scorm_element",
        "scorm_scoes_value",
        # the standard log
        "logstore_standard_log",
        # IOMAD companies, departments, licences and the completion tracker
        "company",
        "company_users",
        "company_course",
        "company_shared_courses",
        "department",
        "companylicense",
        "companylicense_courses",
        "companylicense_users",
        "iomad_courses",
        "local_iomad_track",
        "local_iomad_track_certs",
    }
)

# Columns of whitelisted tables that hold secrets: never read, never matched on (a WHERE on a
# hash leaks it one character at a time), and `*` over their table is refused.
CREDENTIAL_COLUMNS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "user": frozenset({"password", "secret"}),
        "quiz": frozenset({"password"}),
        "enrol": frozenset({"password"}),  # the self-enrolment key
        "groups": frozenset({"enrolmentkey"}),
    }
)

# One example call per allowed function. The validator parses each example once to learn which
# sqlglot nodes the name becomes in the site's dialect (IFNULL is read as COALESCE, DATE_FORMAT as
# a time-to-string node …), so the names here are the ones authors write. First the functions
# both dialects spell and allow alike, then each dialect's own.
STANDARD_FUNCTION_EXAMPLES: Mapping[str, str] = MappingProxyType(
    {
        # aggregates
        "COUNT": "COUNT(x)",
        "SUM": "SUM(x)",
        "AVG": "AVG(x)",
        "MIN": "MIN(x)",
        "MAX": "MAX(x)",
        "STDDEV": "STDDEV(x)",
        "STDDEV_POP": "STDDEV_POP(x)",
        "STDDEV_SAMP": "STDDEV_SAMP(x)",
        "VARIANCE": "VARIANCE(x)",
        "VAR_POP": "VAR_POP(x)",
        "VAR_SAMP": "VAR_SAMP(x)",
        "BIT_AND": "BIT_AND(x)",
        "BIT_OR": "BIT_OR(x)",
        # window functions
        "ROW_NUMBER": "ROW_NUMBER() OVER (ORDER BY x)",
        "RANK": "RANK() OVER (ORDER BY x)",
        "DENSE_RANK": "DENSE_RANK() OVER (ORDER BY x)",
        "PERCENT_RANK": "PERCENT_RANK() OVER (ORDER BY x)",
        "CUME_DIST": "CUME_DIST() OVER (ORDER BY x)",
        "NTILE": "NTILE(4) OVER (ORDER BY x)",
        "LAG": "LAG(x, 1) OVER (ORDER BY x)",
        "LEAD": "LEAD(x, 1) OVER (ORDER BY x)",
        "FIRST_VALUE": "FIRST_VALUE(x) OVER (ORDER BY x)",
        "LAST_VALUE": "LAST_VALUE(x) OVER (ORDER BY x)",
        "NTH_VALUE": "NTH_VALUE(x, 2) OVER (ORDER BY x)",
        # control flow
        "COALESCE": "COALESCE(x, 0)",
        "NULLIF": "NULLIF(x, 0)",
        "GREATEST": "GREATEST(x, 1)",
        "LEAST": "LEAST(x, 1)",
        # strings
        "CONCAT": "CONCAT(x, 'a')",
        "CONCAT_WS": "CONCAT_WS(',', x, 'a')",
        "LOWER": "LOWER(x)",
        "UPPER": "UPPER(x)",
        "LENGTH": "LENGTH(x)",
        "CHAR_LENGTH": "CHAR_LENGTH(x)",
        "CHARACTER_LENGTH": "CHARACTER_LENGTH(x)",
        "SUBSTR": "SUBSTR(x, 1, 2)",
        "LEFT": "LEFT(x, 2)",
        "RIGHT": "RIGHT(x, 2)",
        "TRIM": "TRIM(x)",
        "LTRIM": "LTRIM(x)",
        "RTRIM": "RTRIM(x)",
        "REPLACE": "REPLACE(x, 'a', 'b')",
        "LPAD": "LPAD(x, 5, '0')",
        "RPAD": "RPAD(x, 5, '0')",
        "POSITION": "POSITION('a' IN x)",
        "REVERSE": "REVERSE(x)",
        "REPEAT": "REPEAT(x, 2)",
        "ASCII": "ASCII(x)",
        "REGEXP_REPLACE": "REGEXP_REPLACE(x, 'a', 'b')",
        "MD5": "MD5(x)",
        # numbers
        "ABS": "ABS(x)",
        "ROUND": "ROUND(x, 2)",
        "FLOOR": "FLOOR(x)",
        "CEIL": "CEIL(x)",
        "CEILING": "CEILING(x)",
        "MOD": "MOD(x, 2)",
        "POWER": "POWER(x, 2)",
        "SQRT": "SQRT(x)",
        "EXP": "EXP(x)",
        "LN": "LN(x)",
        "LOG": "LOG(x)",
        "SIGN": "SIGN(x)",
        "PI": "PI()",
        # dates and times (Moodle stores Unix timestamps)
        "NOW": "NOW()",
    }
)

# MySQL's (MariaDB sites, and the SQLite demo, whose reports are written as for MariaDB).
FUNCTION_EXAMPLES: Mapping[str, str] = MappingProxyType(
    {
        **STANDARD_FUNCTION_EXAMPLES,
        # aggregates
        "GROUP_CONCAT": "GROUP_CONCAT(x ORDER BY x SEPARATOR ',')",
        # control flow
        "IF": "IF(x, 1, 2)",
        "IFNULL": "IFNULL(x, 0)",
        # types
        "CAST": "CAST(x AS SIGNED)",
        "CONVERT": "CONVERT(x, CHAR)",
        # strings
        "LCASE": "LCASE(x)",
        "UCASE": "UCASE(x)",
        "SUBSTRING": "SUBSTRING(x, 1, 2)",
        "SUBSTRING_INDEX": "SUBSTRING_INDEX(x, '@', -1)",
        "LOCATE": "LOCATE('a', x)",
        "INSTR": "INSTR(x, 'a')",
        "HEX": "HEX(x)",
        "FIND_IN_SET": "FIND_IN_SET('a', x)",
        "FIELD": "FIELD(x, 'a', 'b')",
        "STRCMP": "STRCMP(x, 'a')",
        "FORMAT": "FORMAT(x, 2)",
        "REGEXP_LIKE": "REGEXP_LIKE(x, 'a')",
        "REGEXP_SUBSTR": "REGEXP_SUBSTR(x, 'a')",
        "JSON_EXTRACT": "JSON_EXTRACT(x, '$.a')",
        "JSON_UNQUOTE": "JSON_UNQUOTE(x)",
        # numbers
        "TRUNCATE": "TRUNCATE(x, 2)",
        "POW": "POW(x, 2)",
        "LOG10": "LOG10(x)",
        "LOG2": "LOG2(x)",
        "RAND": "RAND()",
        # dates and times (Moodle stores Unix timestamps)
        "FROM_UNIXTIME": "FROM_UNIXTIME(x)",
        "UNIX_TIMESTAMP": "UNIX_TIMESTAMP(x)",
        "DATE_FORMAT": "DATE_FORMAT(x, '%Y-%m-%d')",
        "TIME_FORMAT": "TIME_FORMAT(x, '%H:%i')",
        "STR_TO_DATE": "STR_TO_DATE(x, '%Y-%m-%d')",
        "CURRENT_TIMESTAMP": "CURRENT_TIMESTAMP()",
        "CURDATE": "CURDATE()",
        "CURRENT_DATE": "CURRENT_DATE()",
        "CURTIME": "CURTIME()",
        "UTC_TIMESTAMP": "UTC_TIMESTAMP()",
        "DATE": "DATE(x)",
        "TIME": "TIME(x)",
        "YEAR": "YEAR(x)",
        "QUARTER": "QUARTER(x)",
        "MONTH": "MONTH(x)",
        "MONTHNAME": "MONTHNAME(x)",
        "WEEK": "WEEK(x)",
        "WEEKDAY": "WEEKDAY(x)",
        "YEARWEEK": "YEARWEEK(x)",
        "DAY": "DAY(x)",
        "DAYOFMONTH": "DAYOFMONTH(x)",
        "DAYOFWEEK": "DAYOFWEEK(x)",
        "DAYOFYEAR": "DAYOFYEAR(x)",
        "DAYNAME": "DAYNAME(x)",
        "HOUR": "HOUR(x)",
        "MINUTE": "MINUTE(x)",
        "SECOND": "SECOND(x)",
        "LAST_DAY": "LAST_DAY(x)",
        "DATEDIFF": "DATEDIFF(x, x)",
        "TIMESTAMPDIFF": "TIMESTAMPDIFF(DAY, x, x)",
        "DATE_ADD": "DATE_ADD(x, INTERVAL 1 DAY)",
        "DATE_SUB": "DATE_SUB(x, INTERVAL 1 DAY)",
        "ADDDATE": "ADDDATE(x, INTERVAL 1 DAY)",
        "SUBDATE": "SUBDATE(x, INTERVAL 1 DAY)",
        "EXTRACT": "EXTRACT(YEAR FROM x)",
        "SEC_TO_TIME": "SEC_TO_TIME(x)",
        "TIME_TO_SEC": "TIME_TO_SEC(x)",
        "TO_DAYS": "TO_DAYS(x)",
        "MAKEDATE": "MAKEDATE(2024, 1)",
        "CONVERT_TZ": "CONVERT_TZ(x, '+00:00', '+01:00')",
    }
)

ALLOWED_FUNCTIONS: frozenset[str] = frozenset(FUNCTION_EXAMPLES)

# The same allow-list for a Moodle on PostgreSQL, in the names PostgreSQL authors write (the
# validator parses a PostgreSQL site's SQL in sqlglot's `postgres` dialect). Nothing here reads
# files, settings, catalogs or other sessions, sleeps, locks, or runs SQL given as text: see
# common/customsql/dangers.py for the functions refused with a reason.
PG_FUNCTION_EXAMPLES: Mapping[str, str] = MappingProxyType(
    {
        **STANDARD_FUNCTION_EXAMPLES,
        # aggregates
        "STRING_AGG": "STRING_AGG(x, ',' ORDER BY x)",
        "BOOL_AND": "BOOL_AND(x)",
        "BOOL_OR": "BOOL_OR(x)",
        # types
        "CAST": "CAST(x AS INTEGER)",
        # strings
        "INITCAP": "INITCAP(x)",
        "SUBSTRING": "SUBSTRING(x FROM 1 FOR 2)",
        "BTRIM": "BTRIM(x)",
        "STRPOS": "STRPOS(x, 'a')",
        "SPLIT_PART": "SPLIT_PART(x, '@', 2)",
        "TO_HEX": "TO_HEX(x)",
        "~": "x ~ 'a'",
        # numbers
        "TRUNC": "TRUNC(x, 2)",
        "RANDOM": "RANDOM()",
        # dates and times (Moodle stores Unix timestamps)
        "TO_TIMESTAMP": "TO_TIMESTAMP(x)",
        "TO_CHAR": "TO_CHAR(x, 'YYYY-MM-DD')",
        "TO_DATE": "TO_DATE(x, 'YYYY-MM-DD')",
        "DATE_TRUNC": "DATE_TRUNC('month', x)",
        "DATE_PART": "DATE_PART('year', x)",
        "EXTRACT": "EXTRACT(EPOCH FROM x)",
        "AGE": "AGE(x, x)",
        "MAKE_DATE": "MAKE_DATE(2024, 1, 1)",
        "CURRENT_TIMESTAMP": "CURRENT_TIMESTAMP",
        "CURRENT_DATE": "CURRENT_DATE",
        "LOCALTIMESTAMP": "LOCALTIMESTAMP",
        # x = ANY(ARRAY[…])
        "ARRAY": "ARRAY[1, 2]",
    }
)


def allowed_functions(dialect: str) -> frozenset[str]:
    """The function names an author may call in the SQL dialect the validator parses."""
    return _ALLOWED_BY_DIALECT[dialect]


PG_ALLOWED_FUNCTIONS: frozenset[str] = frozenset(PG_FUNCTION_EXAMPLES)
_ALLOWED_BY_DIALECT = {"mysql": ALLOWED_FUNCTIONS, "postgres": PG_ALLOWED_FUNCTIONS}
