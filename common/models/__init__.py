"""App DB models. Importing this package registers every table on Base.metadata."""

from common.models import ops  # noqa: F401
from common.models.base import Base

__all__ = ["Base"]
