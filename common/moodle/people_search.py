"""Finding Moodle users by name within a tenant scope: the audit log's user filter.

Only people the scope may see are ever matched (the query goes through `scoped()`), so a
search cannot be used to learn whether someone outside it exists. Deleted users are nobody's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import String, literal, or_, select

from common.moodle.source import MoodleSource
from common.portable_sql import like_folded
from common.reports.learners import LIKE_ESCAPE, like_escaped
from common.tenancy import TenantScope, scoped

MAX_QUERY_CHARS = 100
# A search box offers a handful of people to pick from, not a directory.
MAX_MATCHES = 20


@dataclass(frozen=True)
class Person:
    user_id: int
    name: str
    username: str


def find_people(
    source: MoodleSource, scope: TenantScope, text: str, limit: int = MAX_MATCHES
) -> list[Person]:
    """People in ``scope`` whose first name, last name, full name, username or email
    contains ``text`` (case as the database compares it), by name; at most ``limit``."""
    words = " ".join(text.split())
    if not words:
        return []
    u = source.tables.user
    pattern = f"%{like_escaped(words)}%"
    full_name = u.c.firstname + literal(" ", String) + u.c.lastname
    matches = or_(*(like_folded(column, pattern, LIKE_ESCAPE)
                    for column in (u.c.firstname, u.c.lastname, full_name, u.c.username,
                                   u.c.email)))  # fmt: skip
    query = (
        select(u.c.id, u.c.firstname, u.c.lastname, u.c.username)
        .where(u.c.deleted == 0, matches)
        .order_by(u.c.lastname, u.c.firstname, u.c.id)
        .limit(limit)
    )
    with source.engine.connect() as conn:
        rows = conn.execute(scoped(query, scope, source)).all()
    return [Person(int(r.id), f"{r.firstname} {r.lastname}", str(r.username)) for r in rows]


def person_in_scope(source: MoodleSource, scope: TenantScope, user_id: int) -> Person | None:
    """The user with this id when ``scope`` may see them; None otherwise (or no such user)."""
    u = source.tables.user
    query = select(u.c.id, u.c.firstname, u.c.lastname, u.c.username).where(
        u.c.id == user_id, u.c.deleted == 0
    )
    with source.engine.connect() as conn:
        row = conn.execute(scoped(query, scope, source)).first()
    return None if row is None else Person(int(row.id), f"{row.firstname} {row.lastname}",
                                           str(row.username))  # fmt: skip
