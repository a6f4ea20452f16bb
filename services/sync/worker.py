"""The sync service: consumes `mr.cmd.sync.*` commands."""

from __future__ import annotations

from common.commands import CommandWorker


class SyncWorker(CommandWorker):
    name = "sync"
