"""Signed cloud-worker callbacks: HMAC-SHA256 over `<timestamp>.<body>` with the company's key.

Headers: `X-ManiReports-Company`, `X-ManiReports-Timestamp` (Unix seconds) and
`X-ManiReports-Signature` (`v1=<hex>`). Standard library only: the Lambda imports it too.
"""

from __future__ import annotations

import hashlib
import hmac
import time

COMPANY_HEADER = "X-ManiReports-Company"
TIMESTAMP_HEADER = "X-ManiReports-Timestamp"
SIGNATURE_HEADER = "X-ManiReports-Signature"
TOLERANCE_S = 300


class SignatureRejected(Exception):
    """Why a callback is refused (the message is safe to return to the caller)."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, company_id: int, body: bytes, now: float | None = None) -> dict:
    timestamp = str(int(time.time() if now is None else now))
    return {
        COMPANY_HEADER: str(company_id),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        "Content-Type": "application/json",
    }


def verify(
    secret: str,
    timestamp: str | None,
    given: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> None:
    """Raise SignatureRejected unless the signature matches and the timestamp is recent."""
    if not timestamp or not given:
        raise SignatureRejected("missing timestamp or signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureRejected("timestamp is not Unix seconds") from None
    now = time.time() if now is None else now
    if abs(now - sent_at) > tolerance_s:
        raise SignatureRejected("timestamp outside the tolerance window")
    if not secret or not hmac.compare_digest(signature(secret, timestamp, body), given):
        raise SignatureRejected("bad signature")
