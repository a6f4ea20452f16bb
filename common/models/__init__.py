"""App DB models. Importing this package registers every table on Base.metadata."""

from common.models import access, analytics, api, custom, mail, ops, unsubscribe  # noqa: F401
from common.models.base import Base

__all__ = ["Base"]
