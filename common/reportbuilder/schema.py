"""The builder's view of the Moodle database: the tables it offers (only whitelisted ones, each
with a human label), their columns with a type that decides the filters and inputs offered
(never a credential column), and the joins along Moodle's foreign keys.

Columns and foreign keys come from `common/moodle/schema.json` (Moodle's own install.xml);
labels, and the keys install.xml leaves undeclared (IOMAD's tables, `course_completions`…),
are added here by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from common.moodle.tables import moodle_schema

ColumnType = Literal["text", "int", "number", "datetime", "boolean"]
COLUMN_TYPES: tuple[ColumnType, ...] = ("text", "int", "number", "datetime", "boolean")

# Table -> (label, SQL alias). Only these are offered, and only when the whitelist has them.
TABLES: dict[str, tuple[str, str]] = {
    "user": ("Learners", "u"),
    "user_enrolments": ("Enrolments", "ue"),
    "enrol": ("Enrolment methods", "e"),
    "course": ("Courses", "c"),
    "course_categories": ("Course categories", "cc"),
    "course_completions": ("Course completions", "ccomp"),
    "course_modules": ("Course activities", "cm"),
    "modules": ("Activity types", "m"),
    "course_modules_completion": ("Activity completions", "cmc"),
    "course_sections": ("Course sections", "cs"),
    "grade_items": ("Grade items", "gi"),
    "grade_grades": ("Grades", "gg"),
    "quiz": ("Quizzes", "q"),
    "quiz_attempts": ("Quiz attempts", "qa"),
    "quiz_grades": ("Quiz grades", "qg"),
    "scorm": ("SCORM packages", "s"),
    "scorm_attempt": ("SCORM attempts", "sa"),
    "scorm_scoes_track": ("SCORM tracking", "sst"),
    "cohort": ("Cohorts", "ch"),
    "cohort_members": ("Cohort members", "chm"),
    "groups": ("Groups", "g"),
    "groups_members": ("Group members", "gm"),
    "role": ("Roles", "r"),
    "role_assignments": ("Role assignments", "ra"),
    "user_lastaccess": ("Last course access", "ula"),
    "user_info_field": ("Profile fields", "uif"),
    "user_info_data": ("Profile field values", "uid"),
    "logstore_standard_log": ("Log entries", "lsl"),
    "company": ("Companies", "co"),
    "company_users": ("Company members", "cu"),
    "company_course": ("Company courses", "cco"),
    "department": ("Departments", "d"),
    "companylicense": ("Licences", "cl"),
    "companylicense_users": ("Licence allocations", "clu"),
    "local_iomad_track": ("Training records", "lit"),
}

# Column labels where the Moodle name says little; the rest are derived from the name.
COLUMN_LABELS: dict[str, dict[str, str]] = {
    "user": {"id": "Learner id", "firstname": "First name", "lastname": "Last name",
             "username": "Username", "email": "Email", "idnumber": "ID number",
             "firstaccess": "First access", "lastaccess": "Last access",
             "lastlogin": "Last login", "currentlogin": "Current login", "auth": "Sign-in method",
             "lastip": "Last IP address", "phone1": "Phone", "phone2": "Mobile phone"},
    "course": {"id": "Course id", "fullname": "Course name", "shortname": "Short name",
               "category": "Category id", "startdate": "Start date", "enddate": "End date",
               "enablecompletion": "Completion tracking"},
    "course_completions": {"course": "Course id", "userid": "Learner id",
                           "timeenrolled": "Enrolled", "timestarted": "Started",
                           "timecompleted": "Completed"},
    "user_enrolments": {"enrolid": "Enrolment method id", "userid": "Learner id",
                        "timestart": "Enrolment starts", "timeend": "Enrolment ends",
                        "status": "Status (0 active)"},
    "enrol": {"enrol": "Method", "courseid": "Course id"},
    "company": {"name": "Company name", "shortname": "Short name"},
    "company_users": {"companyid": "Company id", "userid": "Learner id",
                      "managertype": "Manager type", "departmentid": "Department id"},
    "course_modules_completion": {"coursemoduleid": "Activity id", "userid": "Learner id",
                                  "completionstate": "Completion state"},
    "grade_grades": {"itemid": "Grade item id", "userid": "Learner id",
                     "finalgrade": "Final grade", "rawgrade": "Raw grade"},
    "grade_items": {"itemname": "Item name", "courseid": "Course id", "grademax": "Maximum grade"},
    "quiz_attempts": {"quiz": "Quiz id", "userid": "Learner id", "sumgrades": "Marks",
                      "timestart": "Started", "timefinish": "Finished"},
}  # fmt: skip

# Never offered, whatever the whitelist says: secrets and keys that are credentials by use.
HIDDEN_COLUMNS: dict[str, frozenset[str]] = {
    "user": frozenset({"password", "secret"}),
    "quiz": frozenset({"password"}),
    "enrol": frozenset({"password"}),
    "groups": frozenset({"enrolmentkey"}),
}

# Moodle stores times as Unix seconds in int columns; these (and time*, *time) are dates.
DATE_COLUMNS = frozenset({
    "startdate", "enddate", "firstaccess", "lastaccess", "lastlogin", "currentlogin", "added",
    "enrolstartdate", "enrolenddate", "expirydate", "issuedate", "cutoffdate", "lastused",
    "validto", "validuntil", "due", "timeaccess",
})  # fmt: skip
NOT_DATE_COLUMNS = frozenset({"timelimit", "timezone", "graceperiod"})
FLAG_COLUMNS = frozenset({
    "deleted", "suspended", "confirmed", "visible", "hidden", "locked", "preview", "isusing",
    "enablecompletion", "licensed", "shared", "sent", "educator", "overridden", "excluded",
    "emailstop", "policyagreed", "visibleoncoursepage", "deletioninprogress", "forcecompleted",
})  # fmt: skip

# Keys install.xml leaves undeclared: (table, column, referenced table); the key is its `id`.
EXTRA_KEYS: tuple[tuple[str, str, str], ...] = (
    ("course", "category", "course_categories"),
    ("course_completions", "userid", "user"),
    ("course_completions", "course", "course"),
    ("course_modules", "course", "course"),
    ("course_modules", "module", "modules"),
    ("course_modules_completion", "coursemoduleid", "course_modules"),
    ("course_modules_completion", "userid", "user"),
    ("course_sections", "course", "course"),
    ("quiz", "course", "course"),
    ("quiz_grades", "userid", "user"),
    ("scorm", "course", "course"),
    ("scorm_scoes_track", "userid", "user"),
    ("user_lastaccess", "userid", "user"),
    ("user_lastaccess", "courseid", "course"),
    ("user_info_data", "userid", "user"),
    ("user_info_data", "fieldid", "user_info_field"),
    ("company_users", "userid", "user"),
    ("company_users", "companyid", "company"),
    ("company_users", "departmentid", "department"),
    ("company_course", "companyid", "company"),
    ("company_course", "courseid", "course"),
    ("department", "company", "company"),
    ("companylicense", "companyid", "company"),
    ("local_iomad_track", "userid", "user"),
    ("local_iomad_track", "courseid", "course"),
    ("local_iomad_track", "companyid", "company"),
)

# Columns holding an IOMAD company id: a filter "is the viewer's company" on one binds
# `:companyid`, which makes the report company-safe (a manager runs it for their company only).
COMPANY_COLUMNS = frozenset({
    ("company", "id"), ("company_users", "companyid"), ("company_course", "companyid"),
    ("companylicense", "companyid"), ("local_iomad_track", "companyid"), ("department", "company"),
})  # fmt: skip

_WORDS = {
    "id": "id", "userid": "Learner id", "courseid": "Course id", "companyid": "Company id",
    "timecreated": "Created", "timemodified": "Modified", "timecompleted": "Completed",
    "timestart": "Starts", "timeend": "Ends", "fullname": "Full name", "shortname": "Short name",
    "idnumber": "ID number", "sortorder": "Sort order",
}  # fmt: skip


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    label: str
    type: ColumnType

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "label": self.label, "type": self.type}


@dataclass(frozen=True)
class TableInfo:
    name: str
    label: str
    alias: str
    columns: tuple[ColumnInfo, ...]

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)

    def as_json(self) -> dict[str, Any]:
        columns = [
            {**c.as_json(), "company": True} if (self.name, c.name) in COMPANY_COLUMNS
            else c.as_json() for c in self.columns
        ]  # fmt: skip
        return {"name": self.name, "label": self.label, "columns": columns}


@dataclass(frozen=True)
class Relation:
    """A foreign key: `child.column` holds the `id` of a `parent` row."""

    child: str
    column: str
    parent: str

    @property
    def key(self) -> str:
        return f"{self.child}.{self.column}={self.parent}.id"

    def other(self, table: str) -> str:
        return self.parent if table == self.child else self.child

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "child": self.child, "column": self.column,
                "parent": self.parent}  # fmt: skip


@dataclass(frozen=True)
class BuilderSchema:
    tables: dict[str, TableInfo]
    relations: tuple[Relation, ...]

    def table(self, name: str) -> TableInfo | None:
        return self.tables.get(name)

    def relation(self, key: str) -> Relation | None:
        return next((r for r in self.relations if r.key == key), None)

    def joins_from(self, chosen: Iterable[str]) -> list[Relation]:
        """The relations that reach a table not yet chosen from one that is."""
        have = set(chosen)
        return [
            r for r in self.relations
            if (r.child in have) != (r.parent in have)
        ]  # fmt: skip

    def restricted_to(self, present: Iterable[str]) -> BuilderSchema:
        """Only the tables this site has (IOMAD's, one SCORM layout…) and their relations."""
        keep = set(present)
        tables = {n: t for n, t in self.tables.items() if n in keep}
        relations = tuple(r for r in self.relations if r.child in keep and r.parent in keep)
        return BuilderSchema(tables, relations)

    def as_json(self) -> dict[str, Any]:
        return {
            "tables": [t.as_json() for t in sorted(self.tables.values(), key=lambda t: t.label)],
            "relations": [r.as_json() for r in self.relations],
        }


def column_type(name: str, moodle_type: str) -> ColumnType:
    if moodle_type in ("char", "text"):
        return "text"
    if moodle_type in ("number", "float"):
        return "number"
    if moodle_type != "int":
        return "text"
    if name in FLAG_COLUMNS:
        return "boolean"
    if name not in NOT_DATE_COLUMNS and (
        name in DATE_COLUMNS or name.startswith("time") or name.endswith("time")
    ):
        return "datetime"
    return "int"


def column_label(table: str, name: str) -> str:
    label = COLUMN_LABELS.get(table, {}).get(name) or _WORDS.get(name)
    if label:
        return label
    if name.startswith("time") and len(name) > 4:
        return "Time " + name[4:]
    return name.replace("_", " ").capitalize()


def _hidden(table: str, credentials: dict[str, frozenset[str]]) -> frozenset[str]:
    return HIDDEN_COLUMNS.get(table, frozenset()) | credentials.get(table, frozenset())


@cache
def builder_schema() -> BuilderSchema:
    """Every table the builder offers on any site, as the whitelist allows."""
    from common.customsql.whitelist import CREDENTIAL_COLUMNS, REPORT_TABLES

    credentials = {t: frozenset(c) for t, c in CREDENTIAL_COLUMNS.items()}
    moodle = moodle_schema()["tables"]
    tables: dict[str, TableInfo] = {}
    for name, (label, alias) in TABLES.items():
        if name not in REPORT_TABLES or name not in moodle:
            continue
        hidden = _hidden(name, credentials)
        columns = tuple(
            ColumnInfo(c["name"], column_label(name, c["name"]), column_type(c["name"], c["type"]))
            for c in moodle[name]["columns"]
            if c["name"] not in hidden and c["type"] != "binary"
        )
        tables[name] = TableInfo(name, label, alias, columns)
    keys = [
        (name, fk["columns"][0], fk["reftable"])
        for name in tables
        for fk in moodle[name].get("foreign_keys", [])
        if len(fk["columns"]) == 1 and fk["refcolumns"] == ["id"]
    ]
    relations: list[Relation] = []
    for child, column, parent in [*keys, *EXTRA_KEYS]:
        relation = Relation(child, column, parent)
        if (
            child != parent and child in tables and parent in tables
            and tables[child].column(column) is not None and relation not in relations
        ):  # fmt: skip
            relations.append(relation)
    return BuilderSchema(tables, tuple(relations))
