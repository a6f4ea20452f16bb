"""When a report schedule runs: a `Recurrence` (daily, weekly, monthly or cron, at a time of day
in an IANA zone) and the instants it runs at after a given moment.

Runs are worked out in the schedule's own zone, on its wall clock: 09:00 Europe/London is 09:00Z
in winter and 08:00Z in summer. A wall time a spring-forward day skips runs at the first minute
after the gap; one a fall-back day repeats runs once, at its first occurrence. Cron expressions
are walked on the naive wall clock too and resolved the same way (croniter's own DST handling is
not relied on). Forms, the API and the CLI parse raw strings with `parse_recurrence`, which names
every bad field at once (`FieldError`).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterBadDateError, CroniterError, croniter

from common.errors import FieldError, raise_all

FREQUENCIES = ("daily", "weekly", "monthly", "cron")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
MAX_COUNT = 1000
CRON_MAX_LENGTH = 200
# Where `after` may lie: the zone rules and the date arithmetic stay in range from here.
EARLIEST_AFTER = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_AFTER = datetime(9000, 1, 1, tzinfo=UTC)

_AT = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_DAY = re.compile(r"[0-9]{1,2}")
# croniter's random (R) and hashed (H) fields: not a fixed time, so not a schedule.
_RANDOM_OR_HASHED = re.compile(r"(?<![a-z])[rh](?![a-z])")


@dataclass(frozen=True)
class Recurrence:
    """A schedule's timing. `at` is the local time of day (not for cron); `weekdays` are
    0 = Monday … 6 = Sunday (weekly only); `day` is the day of the month (monthly only, a day past
    a shorter month's end runs on its last day); `cron` is a 5-field expression (cron only)."""

    frequency: str
    tz: str
    at: time | None = None
    weekdays: tuple[int, ...] = ()
    day: int | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weekdays", tuple(sorted(set(self.weekdays))))
        if self.cron is not None:
            object.__setattr__(self, "cron", " ".join(self.cron.split()))
        raise_all(_problems(self))

    def as_raw(self) -> dict[str, str]:
        """The fields as a form holds them; `parse_recurrence(**r.as_raw()) == r`."""
        return {
            "frequency": self.frequency,
            "tz": self.tz,
            "at": self.at.strftime("%H:%M") if self.at is not None else "",
            "weekdays": ",".join(WEEKDAYS[d] for d in self.weekdays),
            "day": str(self.day) if self.day is not None else "",
            "cron": self.cron or "",
        }


def _problems(r: Recurrence) -> list[FieldError]:
    errors: list[FieldError] = []
    if r.frequency not in FREQUENCIES:
        given = f"{r.frequency[:20]!r} is not" if r.frequency else "required:"
        errors.append(FieldError("frequency", f"{given} one of {', '.join(FREQUENCIES)}"))
    if (zone := zone_problem(r.tz)) is not None:
        errors.append(FieldError("tz", zone))
    if r.at is not None and (r.at.second or r.at.microsecond or r.at.tzinfo is not None):
        errors.append(FieldError("at", "must be a time of day HH:MM, without seconds or zone"))
    if any(not 0 <= d <= 6 for d in r.weekdays):
        errors.append(FieldError("weekdays", f"must be one or more of {', '.join(WEEKDAYS)}"))
    if r.day is not None and not 1 <= r.day <= 31:
        errors.append(FieldError("day", "must be a day of the month from 1 to 31"))
    if r.cron is not None and (expression := cron_problem(r.cron)) is not None:
        errors.append(FieldError("cron", expression))
    if r.frequency in FREQUENCIES:
        flagged = {error.field for error in errors}
        errors.extend(error for error in _fit(r) if error.field not in flagged)
    return errors


def _fit(r: Recurrence) -> Iterator[FieldError]:
    """Each frequency's own fields are required, and the others are refused rather than ignored
    (a --weekday given to a daily schedule would otherwise silently mean nothing)."""
    kind = r.frequency
    if kind == "cron":
        if r.at is not None:
            yield FieldError("at", "not used by a cron schedule: the expression gives the time")
    elif r.at is None:
        yield FieldError("at", f"a {kind} schedule needs a time of day HH:MM")
    if kind == "weekly" and not r.weekdays:
        yield FieldError("weekdays", "a weekly schedule needs one or more weekdays")
    if kind != "weekly" and r.weekdays:
        yield FieldError("weekdays", "only a weekly schedule has weekdays")
    if kind == "monthly" and r.day is None:
        yield FieldError("day", "a monthly schedule needs a day of the month (1 to 31)")
    if kind != "monthly" and r.day is not None:
        yield FieldError("day", "only a monthly schedule has a day of the month")
    if kind == "cron" and r.cron is None:
        yield FieldError("cron", "a cron schedule needs a cron expression")
    if kind != "cron" and r.cron is not None:
        yield FieldError("cron", "only a cron schedule has a cron expression")


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # "localtime" is this machine's zone under a file name, not an IANA name.
    return frozenset(available_timezones() - {"localtime"})


def zone_problem(name: str) -> str | None:
    """Why `name` is not an IANA time zone this machine knows, or None."""
    if not name:
        return "required: an IANA time zone name, e.g. Europe/London"
    if name not in _zone_names():
        return f"{name[:60]!r} is not an IANA time zone name (e.g. Europe/London)"
    return None


def cron_problem(expression: str) -> str | None:
    """Why `expression` is not a 5-field cron expression that runs at fixed times, or None."""
    fields = expression.split()
    if not fields:
        return "required: a cron expression, e.g. '0 9 * * mon-fri'"
    if len(expression) > CRON_MAX_LENGTH:
        return f"at most {CRON_MAX_LENGTH} characters"
    if len(fields) != 5:
        return (f"must have 5 fields (minute hour day-of-month month day-of-week), "
                f"not {len(fields)}; no seconds or year field")  # fmt: skip
    if any(_RANDOM_OR_HASHED.search(field.lower()) for field in fields):
        return "random (R) and hashed (H) fields are not allowed: a schedule runs at fixed times"
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return "never matches a date (e.g. 30 February)"
    except (CroniterError, ValueError, KeyError, IndexError) as exc:
        # croniter's messages repeat the expression: "[61 9 * * *] is not acceptable, …".
        return f"not a valid cron expression: {str(exc)[:200]}"
    return None


def parse_recurrence(
    *,
    frequency: str | None,
    tz: str | None,
    at: str | None = None,
    weekdays: str | Iterable[str] | None = None,
    day: str | None = None,
    cron: str | None = None,
) -> Recurrence:
    """A Recurrence from raw strings (a form, an API body, CLI options); None or "" is "not
    given". `weekdays` is "mon,wed" or several such strings. Every bad field is named at once."""
    errors: list[FieldError] = []
    kind = (frequency or "").strip().lower()
    at_value = _parse_at(at, errors)
    days = _parse_weekdays(weekdays, errors)
    day_value = _parse_day(day, errors)
    cron_value = cron.strip() if cron and cron.strip() else None
    zone = (tz or "").strip()
    try:
        recurrence = Recurrence(kind, zone, at_value, days, day_value, cron_value)
    except FieldError as exc:
        # A field that did not parse was passed on as "not given": its own error says more.
        flagged = {error.field for error in errors}
        raise_all(errors + [e for e in exc.errors if e.field not in flagged])
        raise
    raise_all(errors)
    return recurrence


def _parse_at(raw: str | None, errors: list[FieldError]) -> time | None:
    text = (raw or "").strip()
    if not text:
        return None
    match = _AT.fullmatch(text)
    if match is None:
        reason = f"{text[:20]!r} is not a time of day HH:MM (00:00 to 23:59)"
        errors.append(FieldError("at", reason))
        return None
    return time(int(match[1]), int(match[2]))


def _parse_weekdays(raw: str | Iterable[str] | None, errors: list[FieldError]) -> tuple[int, ...]:
    items = [raw] if isinstance(raw, str) else list(raw or ())
    names = [name.strip().lower() for item in items for name in item.split(",") if name.strip()]
    bad = [name for name in names if name not in WEEKDAYS]
    if bad:
        errors.append(FieldError("weekdays", f"{bad[0][:20]!r} is not a weekday: use "
                                             f"{', '.join(WEEKDAYS)}"))  # fmt: skip
        return ()
    return tuple(WEEKDAYS.index(name) for name in names)


def _parse_day(raw: str | None, errors: list[FieldError]) -> int | None:
    text = (raw or "").strip()
    if not text:
        return None
    if not _DAY.fullmatch(text) or not 1 <= int(text) <= 31:
        errors.append(FieldError("day", f"{text[:20]!r} is not a day of the month from 1 to 31"))
        return None
    return int(text)


def parse_after(raw: str | None, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 instant with its offset (`2027-03-29T08:00:00Z`); none given: now."""
    text = (raw or "").strip()
    if not text:
        return now or datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise FieldError("after", f"{text[:40]!r} is not an ISO 8601 date and time") from None
    if value.utcoffset() is None:
        raise FieldError("after", "needs a UTC offset or Z, e.g. 2027-03-29T08:00:00Z")
    return value


def parse_count(raw: str | None, *, default: int = 5) -> int:
    text = (raw or "").strip()
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
        raise FieldError("count", f"must be a whole number from 1 to {MAX_COUNT}")
    return int(text)


def next_run(recurrence: Recurrence, after: datetime) -> datetime:
    """The first run strictly after `after` (aware), as an aware UTC datetime."""
    return next_runs(recurrence, after, 1)[0]


def next_runs(recurrence: Recurrence, after: datetime, count: int) -> list[datetime]:
    """The next `count` (1 to 1000) runs strictly after `after` (aware), in order, aware UTC."""
    if after.utcoffset() is None:
        raise FieldError("after", "needs a UTC offset (an aware datetime)")
    if not EARLIEST_AFTER <= after < LATEST_AFTER:
        raise FieldError("after", "must lie between the years 1900 and 8999")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise FieldError("count", f"must be a whole number from 1 to {MAX_COUNT}")
    zone = ZoneInfo(recurrence.tz)
    after_wall = after.astimezone(zone).replace(tzinfo=None, fold=0)
    runs: list[datetime] = []
    try:
        for wall in _wall_times(recurrence, after_wall):
            instant = resolve_wall_time(wall, zone)
            # Skipped wall times all land on the gap's end: that instant runs once.
            if instant > after and (not runs or instant > runs[-1]):
                runs.append(instant)
                if len(runs) == count:
                    return runs
    except OverflowError:  # the calendar ends in 9999
        pass
    raise FieldError("count", f"fewer than {count} runs before the year 9999")


def _wall_times(r: Recurrence, after_wall: datetime) -> Iterator[datetime]:
    """Candidate local wall times in order. Resolving wall times to instants keeps their order,
    so every run after `after` comes from a candidate from after's own local date on; the day
    before is walked too, for safety, and its instants are dropped by the caller."""
    if r.frequency == "cron":
        assert r.cron is not None
        walk = croniter(r.cron, after_wall)
        while True:
            try:
                wall = walk.get_next(datetime)
            except (OverflowError, ValueError):  # croniter's walk reached the year 9999
                return
            yield wall
    assert r.at is not None
    first = after_wall.date() - timedelta(days=1)
    if r.frequency == "monthly":
        assert r.day is not None
        year, month = first.year, first.month
        while year <= 9999:
            last = calendar.monthrange(year, month)[1]
            yield datetime.combine(date(year, month, min(r.day, last)), r.at)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    day = first
    while True:
        if r.frequency == "daily" or day.weekday() in r.weekdays:
            yield datetime.combine(day, r.at)
        day += timedelta(days=1)


def resolve_wall_time(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant a naive local wall time names in `zone`: a repeated time's first
    occurrence (fold=0); a skipped time's first valid instant after the gap."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a gap, fold=0 reads the wall time with the offset before the transition (an instant
    # after it) and fold=1 with the offset after (an instant before it): the transition lies
    # between, and is found to the second.
    before = int(wall.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    after = int(instant.timestamp())
    target = instant.astimezone(zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == target:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)
