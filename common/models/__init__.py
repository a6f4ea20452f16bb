"""App DB models. Importing this package registers every table on Base.metadata."""

from common.models import (  # noqa: F401
    access,
    analytics,
    api,
    classroom,
    custom,
    hrsync,
    identity,
    mail,
    ops,
    schedules,
    unsubscribe,
)
from common.models.base import Base

__all__ = ["Base"]
