"""The scheduler's periodic tasks, defined in `common.schedules.tasks` (the web tier's scheduler
page reads them too); re-exported here for the scheduler service."""

from common.schedules.tasks import DEFAULT_TASKS, PeriodicTask, tasks_with_intervals

__all__ = ["DEFAULT_TASKS", "PeriodicTask", "tasks_with_intervals"]
