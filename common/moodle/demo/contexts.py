"""Moodle's context tree for the demo site: ids handed out in creation order, paths and depths
kept as Moodle does (`/1/<category ctx>/<course ctx>/<module ctx>`)."""

from __future__ import annotations

SYSTEM = 10
USER = 30
COURSECAT = 40
COURSE = 50
MODULE = 70
# IOMAD's extra level for company contexts (NOTES.md §8).
COMPANY = 13

SYSTEM_CONTEXT_ID = 1

CONTEXT_COLUMNS = ("id", "contextlevel", "instanceid", "path", "depth", "locked")


class ContextTree:
    def __init__(self) -> None:
        self._paths: dict[int, str] = {SYSTEM_CONTEXT_ID: "/1"}
        self._ids: dict[tuple[int, int], int] = {(SYSTEM, 0): SYSTEM_CONTEXT_ID}
        self.rows: list[tuple[int, int, int, str, int, int]] = [
            (SYSTEM_CONTEXT_ID, SYSTEM, 0, "/1", 1, 0)
        ]

    def add(self, level: int, instance: int, parent: int = SYSTEM_CONTEXT_ID) -> int:
        context_id = len(self.rows) + 1
        path = f"{self._paths[parent]}/{context_id}"
        self._paths[context_id] = path
        self._ids[(level, instance)] = context_id
        self.rows.append((context_id, level, instance, path, path.count("/"), 0))
        return context_id

    def id_of(self, level: int, instance: int) -> int:
        return self._ids[(level, instance)]
