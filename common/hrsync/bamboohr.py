"""BambooHR's REST API, the three calls the sync needs: the change feed, the directory of active
employees and one employee's fields.

The base URL may be either documented form, `https://api.bamboohr.com/api/gateway.php/{domain}`
or `https://{domain}.bamboohr.com/api`; both take `/v1/...` after them. Authentication is HTTP
Basic with the API key as the user name and any password ("x"). Throttling (429 or 503 with
`Retry-After`) and other 5xx answers are retried with back-off a bounded number of times; a 429
without `Retry-After` is an error at once (BambooHR says when to come back; guessing hammers it);
401 and 403 are `BambooHRAuthError`, which ends the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

log = logging.getLogger(__name__)

TIMEOUT_S = (5.0, 60.0)  # connect, read: the directory of a large company takes a while
MAX_ATTEMPTS = 5
BACKOFF_BASE_S = 0.5
MAX_WAIT_S = 300.0  # a Retry-After beyond this is not waited for: the run fails, retried later


class BambooHRError(Exception):
    """BambooHR did not answer usefully (after the retries)."""


class BambooHRAuthError(BambooHRError):
    """401/403: the key is wrong or lacks access. Nothing else will work; the run stops."""


class BambooHRThrottled(BambooHRError):
    """429/503 that we may not (no Retry-After) or no longer (attempts used) retry."""


@dataclass(frozen=True)
class Change:
    employee_id: str
    action: str  # Inserted | Updated | Deleted
    last_changed: str


@dataclass(frozen=True)
class ChangeFeed:
    changes: list[Change]  # ordered by lastChanged, then id
    latest: str | None  # the feed's `latest`: the next run's `since` once every change is done


def _id_order(employee_id: str) -> tuple[int, int | str]:
    return (0, int(employee_id)) if employee_id.isdigit() else (1, employee_id)


def _entries(body: Any, key: str) -> list[dict[str, Any]]:
    """The list under ``key``, whichever way BambooHR spells it: an object keyed by id, a list,
    or nothing (an empty feed is `{}` or `[]`, for the whole body or for the key)."""
    if not isinstance(body, dict):
        return []
    found = body.get(key) or []
    if isinstance(found, dict):
        return [
            {"id": str(k), **v} if isinstance(v, dict) else {"id": str(k)} for k, v in found.items()
        ]
    if isinstance(found, list):
        return [item for item in found if isinstance(item, dict)]
    return []


class BambooHR:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: tuple[float, float] = TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base_s: float = BACKOFF_BASE_S,
        max_wait_s: float = MAX_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = base_url.rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        self.base_url = base
        self.session = requests.Session()
        self.session.auth = (api_key, "x")
        self.session.headers["Accept"] = "application/json"
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.requests_made = 0

    def close(self) -> None:
        self.session.close()

    def changed(self, since: str) -> ChangeFeed:
        body = self._get("/v1/employees/changed", {"since": since})
        changes = [
            Change(
                str(entry.get("id", "")),
                str(entry.get("action") or "Updated"),
                str(entry.get("lastChanged") or ""),
            )
            for entry in _entries(body, "employees")
            if str(entry.get("id", "")).strip()
        ]
        changes.sort(key=lambda c: (c.last_changed, _id_order(c.employee_id)))
        latest = body.get("latest") if isinstance(body, dict) else None
        return ChangeFeed(changes, str(latest) if latest else None)

    def directory(self) -> dict[str, dict[str, Any]]:
        """Active employees by id. BambooHR answers 404 for an empty directory (the feed,
        read first, has already shown that the base URL is right)."""
        body = self._get("/v1/employees/directory", None, empty_on_404=True)
        return {str(entry["id"]): entry for entry in _entries(body, "employees")}

    def employee(self, employee_id: str, fields: list[str]) -> dict[str, Any]:
        body = self._get(f"/v1/employees/{employee_id}", {"fields": ",".join(fields)})
        if not isinstance(body, dict):
            raise BambooHRError(f"employee {employee_id}: unexpected answer")
        return body

    def _get(self, path: str, params: dict[str, str] | None, *, empty_on_404: bool = False) -> Any:
        url = self.base_url + path
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                self.requests_made += 1
                response = self.session.get(url, params=params, timeout=self.timeout)
            except requests.RequestException as exc:
                if last:
                    raise BambooHRError(f"GET {path}: {type(exc).__name__}: {exc}") from None
                self._back_off(attempt, path, type(exc).__name__)
                continue
            status = response.status_code
            if status in (401, 403):
                raise BambooHRAuthError(f"GET {path}: HTTP {status}: BambooHR refused the API key")
            if status in (429, 503):
                wait = _retry_after(response.headers.get("Retry-After"))
                if wait is None and status == 429:
                    raise BambooHRThrottled(f"GET {path}: HTTP 429 without Retry-After")
                if last or (wait is not None and wait > self.max_wait_s):
                    raise BambooHRThrottled(f"GET {path}: HTTP {status}, still throttled")
                if wait is None:
                    self._back_off(attempt, path, f"HTTP {status}")
                else:
                    log.info("BambooHR %s: HTTP %d, retrying after %.1f s", path, status, wait)
                    self.sleep(wait)
                continue
            if status >= 500:
                if last:
                    raise BambooHRError(f"GET {path}: HTTP {status}")
                self._back_off(attempt, path, f"HTTP {status}")
                continue
            if status == 404 and empty_on_404:
                return {}
            if status == 404:
                raise BambooHRError(f"GET {path}: HTTP 404 (check BAMBOOHR_BASE_URL)")
            if status >= 400:
                raise BambooHRError(f"GET {path}: HTTP {status}: {response.text[:200]}")
            try:
                return response.json() if response.content.strip() else {}
            except ValueError:
                raise BambooHRError(f"GET {path}: the answer is not JSON") from None
        raise AssertionError("unreachable")

    def _back_off(self, attempt: int, path: str, why: str) -> None:
        wait = self.backoff_base_s * 2 ** (attempt - 1)
        log.info("BambooHR %s: %s, retrying in %.1f s", path, why, wait)
        self.sleep(wait)


def _retry_after(raw: str | None) -> float | None:
    """Seconds to wait: the header holds seconds or an HTTP date."""
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
