"""Leader lease in NATS KV: one scheduler fires, the others wait to take over.

The bucket's TTL expires a lease whose holder stopped renewing (crashed, partitioned); `create`
succeeds only when no live lease exists, and `update` with the last revision fails if someone
else took it meanwhile — both are atomic on the server, so two holders cannot both win.
"""

from __future__ import annotations

import logging

from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)


class LeaderLease:
    def __init__(self, kv: KeyValue, key: str, holder: str):
        self.kv = kv
        self.key = key
        self.holder = holder
        self._revision: int | None = None

    @property
    def held(self) -> bool:
        return self._revision is not None

    async def try_acquire(self) -> bool:
        try:
            self._revision = await self.kv.create(self.key, self.holder.encode())
        except KeyWrongLastSequenceError:
            self._revision = None
        return self.held

    async def renew(self) -> bool:
        if self._revision is None:
            return False
        try:
            self._revision = await self.kv.update(
                self.key, self.holder.encode(), last=self._revision
            )
        except (KeyWrongLastSequenceError, NotFoundError):
            log.warning("lost the %s lease", self.key)
            self._revision = None
        return self.held

    async def release(self) -> None:
        if self._revision is not None:
            try:
                await self.kv.delete(self.key, last=self._revision)
            except KeyWrongLastSequenceError:
                pass
            self._revision = None
