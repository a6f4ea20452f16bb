"""App DB models: analytics."""

from __future__ import annotations
