"""The MIME form of a rendered message, for SMTP and for SES raw sends."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from .base import OutgoingMessage


def sender_address(from_email: str, from_name: str | None) -> str:
    return formataddr((from_name, from_email)) if from_name else from_email


def build_mime(
    message: OutgoingMessage, *, from_email: str, from_name: str | None, reply_to: str | None
) -> EmailMessage:
    """Raises ValueError for a header value that cannot be sent (e.g. one with a newline)."""
    mime = EmailMessage()
    mime["From"] = sender_address(from_email, from_name)
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(usegmt=True)
    # An explicit domain: without one make_msgid asks DNS for this host's name.
    mime["Message-ID"] = make_msgid(domain=from_email.rpartition("@")[2])
    if reply_to:
        mime["Reply-To"] = reply_to
    for name, value in message.headers.items():
        del mime[name]  # a message's own header replaces the default of the same name
        mime[name] = value
    if message.text is not None:
        mime.set_content(message.text)
        mime.add_alternative(message.html, subtype="html")
    else:
        mime.set_content(message.html, subtype="html")
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        mime.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return mime
