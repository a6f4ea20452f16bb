"""The validator's corpora in tests/data/customsql: hostile inputs (JSON lines) and legitimate
reporting queries (an .sql file of `-- @case <id> [sqlite] [mariadb]` blocks)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "customsql"


@dataclass(frozen=True)
class Hostile:
    id: str
    sql: str
    expect: str | None  # a word the rejection must name, when there is one to name


@dataclass(frozen=True)
class Legit:
    id: str
    sql: str
    runs_on: frozenset[str]  # "sqlite", "mariadb"


def hostile_cases() -> list[Hostile]:
    lines = (DATA / "hostile.jsonl").read_text(encoding="utf-8").splitlines()
    return [Hostile(**json.loads(line)) for line in lines if line.strip()]


def legit_cases() -> list[Legit]:
    text = (DATA / "legit.sql").read_text(encoding="utf-8")
    cases = []
    for block in re.split(r"^-- @case ", text, flags=re.MULTILINE)[1:]:
        head, _, body = block.partition("\n")
        name, *runs_on = head.split()
        cases.append(Legit(name, body, frozenset(runs_on)))
    return cases
