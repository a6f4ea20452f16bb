"""Reading an uploaded mapping file row by row, never whole: our own header
(`lms_source,lms_user_id,google_email,full_name`, full_name optional) or a OneRoster 1.1
`users.csv` (sourcedId, username, email, givenName, familyName, …), told apart by the header.

UTF-8 with or without a byte order mark, quoted fields and CRLF line ends are read by the csv
module; a row's line is where it starts in the file (the header is line 1), so a quoted field
spanning lines does not shift the numbers of the rows after it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from common.errors import FieldError

MAPPING_COLUMNS = ("lms_source", "lms_user_id", "google_email", "full_name")
ONEROSTER = "oneroster"
MAPPING = "mapping"


@dataclass(frozen=True)
class FileRow:
    """One data row. The field names are those of the file, for the errors the viewer reads."""

    line: int
    source: str
    lms_user_id: str
    google_email: str
    full_name: str | None
    fields: tuple[str, str, str]  # the file's names for source, user id and email


def read_rows(binary: IO[bytes], source: str | None = None) -> Iterator[FileRow]:
    """The rows of ``binary``; ``source`` names the LMS of a OneRoster file (required there)
    and fills a blank `lms_source` in ours. A header that is neither is a FieldError("file")."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="", errors="strict")
    try:
        reader = csv.reader(text)
        try:
            header = next(reader)
        except StopIteration:
            raise FieldError("file", "the file is empty") from None
        names = [name.strip().lower() for name in header]
        kind = _kind(names)
        if kind == ONEROSTER and not (source or "").strip():
            raise FieldError("source", "name the LMS this OneRoster file comes from")
        index = {name: i for i, name in enumerate(names)}
        previous_end = reader.line_num
        for record in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in record):
                continue  # a blank line
            yield _row(kind, index, record, line, (source or "").strip().lower())
    except UnicodeDecodeError as exc:
        raise FieldError("file", f"not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise FieldError("file", f"not a CSV file: {exc}") from None
    finally:
        text.detach()  # the caller owns the binary stream


def _kind(names: list[str]) -> str:
    if {"lms_source", "lms_user_id", "google_email"} <= set(names):
        return MAPPING
    if "sourcedid" in names and ("email" in names or "username" in names):
        return ONEROSTER
    raise FieldError(
        "file",
        "the header must be lms_source,lms_user_id,google_email[,full_name] or a OneRoster "
        "users.csv header (sourcedId, username, email, givenName, familyName, …)",
    )


def _cell(record: list[str], index: dict[str, int], name: str) -> str:
    at = index.get(name)
    return record[at].strip() if at is not None and at < len(record) else ""


def _row(kind: str, index: dict[str, int], record: list[str], line: int, source: str) -> FileRow:
    if kind == MAPPING:
        return FileRow(
            line=line,
            source=_cell(record, index, "lms_source").lower() or source,
            lms_user_id=_cell(record, index, "lms_user_id"),
            google_email=_cell(record, index, "google_email").lower(),
            full_name=_cell(record, index, "full_name") or None,
            fields=("lms_source", "lms_user_id", "google_email"),
        )
    email = _cell(record, index, "email")
    username = _cell(record, index, "username")
    if not email and "@" in username:
        email = username  # many districts put the Google login in username only
    name = " ".join(filter(None, (_cell(record, index, "givenname"),
                                  _cell(record, index, "familyname"))))  # fmt: skip
    return FileRow(
        line=line,
        source=source,
        lms_user_id=_cell(record, index, "sourcedid"),
        google_email=email.lower(),
        full_name=name or None,
        fields=("source", "sourcedId", "email"),
    )
