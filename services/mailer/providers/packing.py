"""Packing rendered messages into as few provider requests as the provider's limits allow."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from .base import OutgoingMessage


@dataclass
class _OpenRequest:
    messages: list[OutgoingMessage] = field(default_factory=list)
    addresses: set[str] = field(default_factory=set)
    size: int = 0


def pack_requests(
    messages: Iterable[OutgoingMessage],
    *,
    max_count: int,
    max_bytes: int | None = None,
    size: Callable[[OutgoingMessage], int] = lambda message: 0,
    shared_part: Callable[[OutgoingMessage], Hashable] = lambda message: None,
) -> list[list[OutgoingMessage]]:
    """Group messages into requests, keeping their order within each request.

    A request holds messages with the same ``shared_part`` (what the provider sends once per
    request, e.g. attachments), at most ``max_count`` of them and ``max_bytes`` of ``size``
    (a message bigger than that travels alone), and each address once: batch APIs key the
    per-recipient data by address, and SendGrid rejects a request naming an address twice.
    """
    requests: list[list[OutgoingMessage]] = []
    open_requests: dict[Hashable, _OpenRequest] = {}
    for message in messages:
        part = shared_part(message)
        message_size = size(message)
        address = message.to.lower()
        current = open_requests.get(part)
        if (
            current is None
            or len(current.messages) >= max_count
            or address in current.addresses
            or (max_bytes is not None and current.size + message_size > max_bytes)
        ):
            current = open_requests[part] = _OpenRequest()
            requests.append(current.messages)
        current.messages.append(message)
        current.addresses.add(address)
        current.size += message_size
    return requests
