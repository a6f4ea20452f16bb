"""HTTP plumbing shared by the SendGrid and Mailgun providers.

One pooled ``requests`` session per provider (keep-alive across the requests of a job), the
blocking call moved off the event loop, and the statuses both APIs mean the same way: 429 is
throttling, 5xx is the provider's trouble, 401/403 is a key that will not work. Redirects are
not followed: the API key must reach the provider's own host and nothing else.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import requests

from common.mail import failures

from .base import PermanentSendError, ProviderThrottled, TransientSendError


class HttpApi:
    def __init__(self, service: str, base_url: str, timeout_s: float) -> None:
        self.service = service
        self.session = requests.Session()
        self._base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s

    async def post(self, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self._base_url}{path}"
        try:
            response = await asyncio.to_thread(
                self.session.post, url, timeout=self._timeout_s, allow_redirects=False, **kwargs
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientSendError(failures.UNREACHABLE, f"{self.service}: {exc}") from exc
        if response.is_redirect or 300 <= response.status_code < 400:
            location = response.headers.get("Location", "")
            raise PermanentSendError(
                failures.REDIRECTED, f"{self.service} {response.status_code} to {location!r}"
            )
        return response

    def raise_for_unavailable(self, response: requests.Response) -> None:
        """Raise for the statuses that mean "not now", "not with this key" or "too large"."""
        status = response.status_code
        detail = f"{self.service} {status}: {describe(response)}"
        if status == 429:
            raise ProviderThrottled(failures.RATE_LIMITED, retry_after_s(response), detail)
        if status >= 500:
            raise TransientSendError(failures.SERVER_ERROR, detail)
        if status in (401, 403):
            raise PermanentSendError(failures.CREDENTIALS_REFUSED, detail)
        if status == 413:
            raise PermanentSendError(failures.MESSAGE_TOO_LARGE, detail)

    def close(self) -> None:
        self.session.close()


def retry_after_s(response: requests.Response) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date) or X-RateLimit-Reset (epoch)."""
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        if retry_after.strip().isdigit():
            return float(retry_after)
        try:
            moment = email.utils.parsedate_to_datetime(retry_after)
        except (TypeError, ValueError):
            return None
        return max(0.0, moment.timestamp() - time.time())
    reset = response.headers.get("X-RateLimit-Reset")
    if reset and reset.strip().isdigit():
        return max(0.0, float(reset) - time.time())
    return None


def describe(response: requests.Response) -> str:
    """The start of a reply, for the mailer's log (never for users: see common.mail.failures)."""
    text = response.text.strip()
    return text[:300] if text else response.reason or str(response.status_code)
