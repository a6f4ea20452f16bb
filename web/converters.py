"""URL converters: `<id:name>` takes ASCII digits up to 2^63−1, nothing else.

Werkzeug's `<int:…>` matches Unicode digits ("٣") and any length, so a path like
`/analytics/scorm/99999999999999999999999` reached the database and overflowed it. Here a
value that is not an id does not match the route at all: 404.
"""

from __future__ import annotations

from werkzeug.routing import BaseConverter, ValidationError

from common.ids import MAX_ID


class IdConverter(BaseConverter):
    regex = r"[0-9]{1,19}"
    weight = 50

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValidationError()
        return number

    def to_url(self, value: object) -> str:
        return str(int(value))  # type: ignore[call-overload]
