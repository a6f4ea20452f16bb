"""The mailer service: consumes `mr.cmd.mailer.*` commands."""

from __future__ import annotations

from common.commands import CommandWorker


class MailerWorker(CommandWorker):
    name = "mailer"
