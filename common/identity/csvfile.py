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
from collections.abc import Callable, Iterator
from typing import IO, NamedTuple

from common.errors import FieldError

MAPPING_COLUMNS = ("lms_source", "lms_user_id", "google_email", "full_name")
ONEROSTER = "oneroster"
MAPPING = "mapping"


class FileRow(NamedTuple):
    """One data row. The field names are those of the file, for the errors the viewer reads.
    (A named tuple: made 100,000 times per large file, and cheaper to make than a dataclass.)"""

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
        make = _mapping_row(index, (source or "").strip().lower()) if kind == MAPPING else None
        previous_end = reader.line_num
        for record in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in record):
                continue  # a blank line
            if make is not None:
                yield make(record, line)
            else:
                yield _oneroster_row(index, record, line, (source or "").strip().lower())
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


MAPPING_FIELDS = ("lms_source", "lms_user_id", "google_email")


def _mapping_row(index: dict[str, int], source: str) -> Callable[[list[str], int], FileRow]:
    """A maker of our own rows, with the column positions looked up once."""
    at_source, at_id, at_email = (index[name] for name in MAPPING_FIELDS)
    at_name = index.get("full_name")
    width = max(at_source, at_id, at_email, -1 if at_name is None else at_name) + 1

    def make(record: list[str], line: int) -> FileRow:
        if len(record) < width:  # a short row: the missing cells are blank
            record = record + [""] * (width - len(record))
        name = record[at_name].strip() if at_name is not None else ""
        return FileRow(line, record[at_source].strip().lower() or source,
                       record[at_id].strip(), record[at_email].strip().lower(),
                       name or None, MAPPING_FIELDS)  # fmt: skip

    return make


def _oneroster_row(index: dict[str, int], record: list[str], line: int, source: str) -> FileRow:
    email = _cell(record, index, "email")
    username = _cell(record, index, "username")
    if not email and "@" in username:
        email = username  # many districts put the Google login in username only
    name = " ".join(filter(None, (_cell(record, index, "givenname"),
                                  _cell(record, index, "familyname"))))  # fmt: skip
    return FileRow(line, source, _cell(record, index, "sourcedid"), email.lower(), name or None,
                   ("source", "sourcedId", "email"))  # fmt: skip
