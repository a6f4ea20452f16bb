"""Files of scheduled reports for `scheduled_report` jobs: each recipient's data names the file
rendered for their scope (`file_id`); it is attached, unless the run gave them a download link
instead (over the attachment size). The file must belong to the job's company, so a recipient
row can never pull in another company's file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from common.appdb import AppDB
from common.mail.templates import SITE_WIDE
from common.models.schedules import ReportFile
from common.schedules.runner import JOB_TYPE
from services.mailer.providers import Attachment


class ReportFileAttacher:
    def __init__(self, appdb: AppDB) -> None:
        self.appdb = appdb

    async def __call__(self, templates: Any, config: Any, claimed: Sequence[tuple]) -> list[tuple]:
        if templates.job_type != JOB_TYPE:
            return list(claimed)
        return await asyncio.to_thread(self._attach, templates.company_id, claimed)

    def _attach(self, company_id: int, claimed: Sequence[tuple]) -> list[tuple]:
        wanted: dict[int, int] = {}  # file id -> recipient id (for the files to attach)
        datas = {}
        for recipient_id, _email, data_json, *_ in claimed:
            data = json.loads(data_json or "{}")
            datas[recipient_id] = data
            if not data.get("link") and isinstance(data.get("file_id"), int):
                wanted[data["file_id"]] = recipient_id
        files = self._files(company_id, set(wanted))
        result = []
        for recipient_id, email, data_json, *_ in claimed:
            file = files.get(datas[recipient_id].get("file_id"))
            attached = (file,) if file is not None and not datas[recipient_id].get("link") else ()
            # A recipient whose file is gone (retention) still gets the message, without it.
            result.append((recipient_id, email, data_json, attached))
        return result

    def _files(self, company_id: int, ids: set[int]) -> dict[int, Attachment]:
        if not ids:
            return {}
        owner = None if company_id == SITE_WIDE else company_id
        f = ReportFile
        query = select(f.id, f.filename, f.content, f.content_type).where(f.id.in_(ids))
        query = query.where(f.companyid.is_(None) if owner is None else f.companyid == owner)
        with self.appdb.transaction() as session:
            return {int(r.id): Attachment(r.filename, bytes(r.content), r.content_type)
                    for r in session.execute(query)}  # fmt: skip


class AttachmentsByJobType:
    """The delivery hook: hands each job type's recipients to its attacher, if it has one."""

    def __init__(self, **attachers: Any) -> None:
        self.attachers = attachers

    async def __call__(self, templates: Any, config: Any, claimed: Sequence[tuple]) -> list[tuple]:
        attacher = self.attachers.get(templates.job_type)
        return list(claimed) if attacher is None else await attacher(templates, config, claimed)
