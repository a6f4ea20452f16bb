"""The raw text of custom SQL, checked before sqlglot reads it.

What a parser could hide or read differently from MySQL is refused here, with its line and
column: over-long input, NUL and text-direction characters, characters outside ASCII beyond
quotes, MySQL executable comments (`/*! … */`, `/*M! … */`), a `/*` inside a comment, quotes or
comments never closed, a second statement after `;`, and a first word that is not SELECT or
WITH. Moodle's `{table}` becomes `` `table` `` (same length, so positions hold) and the places of
those names are kept, as are the `:name` placeholders in order of first use.

PostgreSQL's text is read by its own rules: quoted text without backslash escapes (runs set
standard_conforming_strings; E'…' text is refused by the validator), "double-quoted" names,
`--` starting a comment anywhere, no `#` comments, `::` a cast (never a `:name`), and
dollar-quoted text (`$$ … $$`) refused. `{table}` becomes `"table"`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.customsql.rejected import QueryRejected

MAX_SQL_BYTES = 100_000

# MySQL's lexical pieces, in the order they are tried: quoted text (backslash escapes and doubled
# quotes, as MySQL reads them by default), comments, a Moodle `{table}`, and everything else.
_PIECES = re.compile(
    r"""
      (?P<squote>'(?:[^'\\]|\\.|'')*')
    | (?P<dquote>"(?:[^"\\]|\\.|"")*")
    | (?P<btick>`(?:[^`]|``)*`)
    | (?P<block>/\*.*?\*/)
    | (?P<line>(?:--(?=[\s]|$)|\#)[^\n]*)
    | (?P<brace>\{[^{}\s'"`]*\})
    | (?P<param>:[A-Za-z_][A-Za-z0-9_]*)
    | (?P<semi>;)
    | (?P<open>['"`]|/\*)
    | (?P<code>[^'"`/\#{:;-]+|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_PG_PIECES = re.compile(
    r"""
      (?P<squote>'(?:[^']|'')*')
    | (?P<dquote>"(?:[^"]|"")*")
    | (?P<block>/\*.*?\*/)
    | (?P<line>--[^\n]*)
    | (?P<brace>\{[^{}\s'"`]*\})
    | (?P<cast>::)
    | (?P<param>:[A-Za-z_][A-Za-z0-9_]*)
    | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)
    | (?P<semi>;)
    | (?P<open>['"]|/\*)
    | (?P<code>[^'"/{:;$-]+|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_QUOTE_NAME = {"mysql": "`", "postgres": '"'}
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_NON_ASCII_CODE = re.compile(r"[^\x09\x0a\x0d\x20-\x7e]")
_WORD = re.compile(r"[A-Za-z0-9_]+")


@dataclass
class Scanned:
    text: str  # the SQL with `{table}` written as `table` (same length: positions hold)
    source: str
    braced: set[int]  # start offsets of the `{table}` names
    params: list[str]  # `:name` placeholders in order of first use

    def place(self, offset: int) -> tuple[int, int]:
        line = self.source.count("\n", 0, offset) + 1
        return line, offset - (self.source.rfind("\n", 0, offset) + 1) + 1


def scan(sql: str, dialect: str = "mysql") -> Scanned:
    if not isinstance(sql, str):
        raise QueryRejected("the query must be text")
    if len(sql) > MAX_SQL_BYTES or len(sql.encode("utf-8", "surrogatepass")) > MAX_SQL_BYTES:
        raise QueryRejected(f"the query is longer than {MAX_SQL_BYTES // 1000} kB")
    scanned = Scanned(text=sql, source=sql, braced=set(), params=[])
    if not sql.strip():
        raise QueryRejected("the query is empty", 1, 1)
    nul = sql.find("\x00")
    if nul >= 0:
        raise QueryRejected("a NUL character is not allowed", *_at(scanned, nul), name="NUL")
    bidi = _BIDI.search(sql)
    if bidi:
        raise QueryRejected(
            f"the invisible direction character U+{ord(bidi.group()):04X} is not allowed",
            *_at(scanned, bidi.start()),
            name=f"U+{ord(bidi.group()):04X}",
        )
    pieces: list[str] = []
    statement_ended_at: int | None = None
    first_word = True
    pieces_of = _PG_PIECES if dialect == "postgres" else _PIECES
    for match in pieces_of.finditer(sql):
        kind, piece, start = match.lastgroup, match.group(), match.start()
        if statement_ended_at is not None and kind not in ("block", "line") and piece.strip():
            raise QueryRejected(
                "only one statement may be given: a second one follows the `;`",
                *_at(scanned, statement_ended_at),
                name=";",
            )
        if kind == "block":
            if piece.startswith(("/*!", "/*M!", "/*m!")):
                raise QueryRejected(
                    "MySQL executable comments (/*! … */) are not allowed",
                    *_at(scanned, start),
                    name="/*!",
                )
            if "/*" in piece[2:]:
                raise QueryRejected(
                    "a comment may not contain `/*`",
                    *_at(scanned, start + 2 + piece[2:].index("/*")),
                )
        elif kind == "brace":
            name = piece[1:-1]
            if not _WORD.fullmatch(name):
                raise QueryRejected(
                    f"`{piece}` is not a Moodle table name", *_at(scanned, start), name=piece
                )
            scanned.braced.add(start)
            piece = f"{_QUOTE_NAME[dialect]}{name}{_QUOTE_NAME[dialect]}"
        elif kind == "param":
            if piece[1:] not in scanned.params:
                scanned.params.append(piece[1:])
        elif kind == "dollar":
            raise QueryRejected(
                "dollar-quoted text ($$ … $$) is not allowed: write 'quoted text'",
                *_at(scanned, start),
                name=piece,
            )
        elif kind == "semi":
            statement_ended_at = start
        elif kind == "open":
            what = "comment" if piece == "/*" else "quoted text"
            raise QueryRejected(
                f"this {what} (`{piece}`) is never closed", *_at(scanned, start), name=piece
            )
        elif kind == "code":
            odd = _NON_ASCII_CODE.search(piece)
            if odd:
                char = odd.group()
                raise QueryRejected(
                    f"the character {char!r} (U+{ord(char):04X}) may only appear inside quotes",
                    *_at(scanned, start + odd.start()),
                    name=char,
                )
            if first_word and piece.strip():
                first_word = False
                _check_first_word(scanned, piece, start)
        pieces.append(piece)
    if scanned.braced:
        scanned.text = "".join(pieces)
    return scanned


_FIRST_WORD = re.compile(r"\s*([A-Za-z_]+)")


def _check_first_word(scanned: Scanned, piece: str, start: int) -> None:
    """A statement that is not a query is named at once, even one sqlglot cannot parse."""
    match = _FIRST_WORD.match(piece)
    if piece.lstrip().startswith("(") or match is None:
        return
    word = match.group(1).upper()
    if word not in ("SELECT", "WITH"):
        raise QueryRejected(
            f"only a SELECT may be run; this is a {word} statement",
            *_at(scanned, start + match.start(1)),
            name=word,
        )


def _at(scanned: Scanned, offset: int) -> tuple[int, int]:
    return scanned.place(offset)
