"""An employee's BambooHR record → the Moodle user fields it should have, through the mapping
(see `common.hrsync.settings` for the default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.hrsync.settings import IDENTITY_FIELDS, field_names


def bamboohr_fields(mapping: Mapping[str, Any]) -> list[str]:
    """Every BambooHR field the mapping reads, once each, in a stable order."""
    names: list[str] = []
    sources = [mapping[key] for key in IDENTITY_FIELDS] + list(mapping["profile"].values())
    for source in sources:
        for name in field_names(source):
            if name not in names:
                names.append(name)
    return names


def _value(record: Mapping[str, Any], source: str) -> str:
    for name in field_names(source):
        value = record.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return ""


def moodle_fields(record: Mapping[str, Any], mapping: Mapping[str, Any]) -> dict[str, Any]:
    """{username, email, idnumber, firstname, lastname, department, institution,
    customfields: {shortname: value}}; the username lower-cased (Moodle's PARAM_USERNAME
    refuses capitals), the email as BambooHR has it."""
    fields: dict[str, Any] = {key: _value(record, mapping[key]) for key in IDENTITY_FIELDS}
    fields["username"] = fields["username"].lower()
    fields["customfields"] = {
        shortname: _value(record, source) for shortname, source in mapping["profile"].items()
    }
    return fields
