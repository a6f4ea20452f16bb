"""Which SCORM tracking elements hold times, so the attempt page can show them humanised.

Durations are SCORM's own (`cmi.core.session_time` `00:12:30`, `cmi.total_time` `PT12M30S`);
`x.start.time` is Moodle's record of when the attempt began, in Unix seconds. Anything that
does not parse as what its name promises is shown as stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.analytics.scorm import parse_duration

_DURATION = re.compile(
    r"^cmi\.(?:core\.)?(?:session_time|total_time|max_time_allowed)$"
    r"|^cmi\.interactions\.\d+\.latency$"
    r"|^cmi\.objectives\.\d+\.(?:session_time|total_time)$"
)
_UNIX_TIME = frozenset({"x.start.time"})
# A Unix time a package could store: 2001-09-09 .. 2286-11-20 (ten digits).
_TEN_DIGITS = re.compile(r"^\d{10}$")


@dataclass(frozen=True)
class ElementValue:
    kind: str  # "duration" (seconds), "time" (Unix seconds) or "text"
    raw: str
    seconds: float | None = None  # the duration, or the Unix time

    @property
    def humanised(self) -> bool:
        return self.kind != "text"


def element_value(element: str, value: str) -> ElementValue:
    if _DURATION.match(element):
        seconds = parse_duration(value)
        if seconds is not None:
            return ElementValue("duration", value, seconds)
    elif element in _UNIX_TIME and _TEN_DIGITS.match(value.strip()):
        return ElementValue("time", value, float(value.strip()))
    return ElementValue("text", value)
