"""Finding the recipients behind a request that a provider refused as a whole.

SES (MessageRejected, InvalidParameterValue) and Mailgun ("'to' parameter is not a valid
address") refuse a multi-recipient request because of one recipient without naming it.
Resending the request in halves finds them with about 2·k·log2(n) requests for k refused
recipients among n, and everyone else is still sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .base import BatchOutcomes, OutgoingMessage, PermanentSendError


class RecipientRejected(PermanentSendError):
    """The provider refused a request because of one or more recipients it did not name."""


async def send_isolating_rejections(
    request: list[OutgoingMessage],
    send: Callable[[list[OutgoingMessage]], Awaitable[None]],
    batch: BatchOutcomes,
) -> None:
    """Call ``send`` (which records accepted recipients) and bisect on RecipientRejected."""
    try:
        await send(request)
    except RecipientRejected as exc:
        if len(request) == 1:
            batch.failed(request[0], exc.reason, exc.detail)
            return
        middle = len(request) // 2
        await send_isolating_rejections(request[:middle], send, batch)
        await send_isolating_rejections(request[middle:], send, batch)
