"""The order of a long report's rows, taken when its first page is read, for the pages after it.

Ordering 100,000 rows costs a pass over all of them, whichever page is asked for; paging
through them should not. So the first page orders every row once and keeps only their ids, in
order (16 bytes a row); later pages cut their slice from that and compute just its rows,
which stay live. Paging is also steadier for it: a row that changes while someone pages moves
at their next first page, not between page 3 and page 4, so no row is shown twice or skipped.

Snapshots live in this process for SNAPSHOT_TTL_S and hold at most MAX_IDS ids in all (the
oldest go first); a page that finds none orders the rows again. Keys include the scoped query
object itself (one per tenant scope: `common.tenancy.scoped`), so one viewer's snapshot is
never another scope's.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

SNAPSHOT_TTL_S = 300.0
MAX_IDS = 4_000_000  # 32 MB of ids across every snapshot of the process


@dataclass(frozen=True)
class RowOrder:
    """Every row's ids, in order: `width` ids per row in one flat array."""

    ids: array  # type: ignore[type-arg]
    width: int
    taken_at: float

    @property
    def total(self) -> int:
        return len(self.ids) // self.width

    def window(self, offset: int, size: int) -> list[tuple[int, ...]]:
        start, stop = offset * self.width, (offset + size) * self.width
        flat = self.ids[start:stop]
        return [tuple(flat[i : i + self.width]) for i in range(0, len(flat), self.width)]

    @classmethod
    def of(cls, rows: Iterable[Sequence[Any]], width: int) -> RowOrder:
        """From rows of `width` integer ids (the database's ints, used as they come)."""
        return cls(array("q", chain.from_iterable(rows)), width, time.monotonic())


class Snapshots:
    def __init__(self, ttl_s: float = SNAPSHOT_TTL_S, max_ids: int = MAX_IDS) -> None:
        self.ttl_s = ttl_s
        self.max_ids = max_ids
        self._held: OrderedDict[Hashable, tuple[object, RowOrder]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, owner: object, key: Hashable) -> RowOrder | None:
        full_key = (id(owner), key)
        with self._lock:
            held = self._held.get(full_key)
            if held is None or held[0] is not owner:
                return None
            order = held[1]
            if time.monotonic() - order.taken_at > self.ttl_s:
                del self._held[full_key]
                return None
            self._held.move_to_end(full_key)
            return order

    def clear(self) -> None:
        with self._lock:
            self._held.clear()

    def put(self, owner: object, key: Hashable, order: RowOrder) -> None:
        """Keep `order` (the owner is held too, so its id cannot be reused meanwhile)."""
        if len(order.ids) > self.max_ids:
            return
        with self._lock:
            self._held[(id(owner), key)] = (owner, order)
            self._held.move_to_end((id(owner), key))
            while sum(len(o.ids) for _, o in self._held.values()) > self.max_ids:
                self._held.popitem(last=False)


SNAPSHOTS = Snapshots()
