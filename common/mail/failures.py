"""The words a user reads when an email was not sent: a fixed set, never the provider's reply.

A recipient's and a job's `last_error` (job page, API) say which kind of failure happened.
What the provider or relay actually answered stays in the mailer's log beside the job id: a
reply body or an SMTP banner can carry anything the remote end chooses, and a company that
could point its settings at an internal address would otherwise read that service's answers
back through the job page.
"""

from __future__ import annotations

CREDENTIALS_REFUSED = "provider refused the credentials"
UNREACHABLE = "provider unreachable"
CONNECTION_LOST = "connection to the provider lost"
SESSION_FAILED = "provider session could not be set up (check the security settings)"
RATE_LIMITED = "provider rate limit"
SERVER_ERROR = "provider error (5xx)"
TEMPORARY = "provider could not send now (temporary)"
REDIRECTED = "provider answered with a redirect (not followed)"
REQUEST_REFUSED = "provider refused the request"
SENDER_REFUSED = "provider refused the sender"
RECIPIENT_REFUSED = "recipient refused by the provider"
RECIPIENT_DEFERRED = "recipient deferred by the provider (temporary)"
MESSAGE_REFUSED = "message refused by the provider"
MESSAGE_TOO_LARGE = "message too large"
MESSAGE_NOT_BUILT = "message could not be built (a header holds a line break)"
INVALID_ADDRESS = "invalid address"
HOST_NOT_ALLOWED = "SMTP host not allowed (a private or local address)"
CLOUD_UNAVAILABLE = "cloud worker unavailable, sending locally"
CLOUD_ERROR = "cloud worker reported a provider error"
TEMPLATE_PREFIX = "template could not be rendered: "

FIXED = frozenset(
    {
        CREDENTIALS_REFUSED, UNREACHABLE, CONNECTION_LOST, SESSION_FAILED, RATE_LIMITED,
        SERVER_ERROR, TEMPORARY, REDIRECTED, REQUEST_REFUSED, SENDER_REFUSED, RECIPIENT_REFUSED,
        RECIPIENT_DEFERRED, MESSAGE_REFUSED, MESSAGE_TOO_LARGE, MESSAGE_NOT_BUILT,
        INVALID_ADDRESS, HOST_NOT_ALLOWED, CLOUD_UNAVAILABLE, CLOUD_ERROR,
    }
)  # fmt: skip
# Our own explanations after a fixed prefix (an address check, a template error).
_EXPLAINED = (TEMPLATE_PREFIX, f"{INVALID_ADDRESS}: ")
MAX_SHOWN_CHARS = 300


def template_failed(error: Exception) -> str:
    """For a recipient whose message breaks a template limit or cannot be rendered."""
    return f"{TEMPLATE_PREFIX}{error}"[:MAX_SHOWN_CHARS]


def invalid_address(problem: str) -> str:
    return f"{INVALID_ADDRESS}: {problem}"[:MAX_SHOWN_CHARS]


def shown(error: object, *, otherwise: str = CLOUD_ERROR) -> str | None:
    """``error`` if it is one of the fixed texts (or one of ours after a fixed prefix), else
    ``otherwise``: for reasons reported from outside this process (the cloud worker's)."""
    if error is None or error == "":
        return None
    text = str(error)
    if text in FIXED:
        return text
    if text.startswith(_EXPLAINED):
        return text[:MAX_SHOWN_CHARS]
    return otherwise
