"""App DB models: mail."""

from __future__ import annotations
