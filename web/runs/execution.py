"""Running a report in the web tier: under the concurrency limit, recorded in the run history.

Every execution path of the web tier — the page's data endpoint, exports, the JSON API and the
role dashboards — runs a report through here: take a slot (waiting up to DEFAULT_WAIT_S; a
`RunLimitBusy` becomes a 429 with Retry-After, the position and a ticket that keeps the place
when sent back as `X-Run-Ticket`), then record the run. An export holds its slot until its
last byte is written or the client goes away.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from flask import Flask, current_app, jsonify, request
from sqlalchemy.engine import make_url

from common.errors import FieldError
from common.reports.runs import RunRecord, finish_run, recorded_run, start_run
from common.run_limit import (
    BUCKET_PREFIX,
    DEFAULT_WAIT_S,
    Hold,
    RunLimitBusy,
    RunLimiter,
    build_run_limiter,
)
from common.settings import Settings
from web.bus_client import BusClient
from web.errors import error_response, wants_json
from web.reports.running import ReportRequest

TICKET_HEADER = "X-Run-Ticket"
RowCounter = Callable[[Iterable[dict[str, Any]]], Iterator[dict[str, Any]]]
EXTENSION = "manireports_run_limiter"


def bucket_prefix(settings: Settings) -> str:
    """The KV buckets' name prefix: one set per app database, so the replicas of one
    installation share the limit and two installations on one NATS do not."""
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    return f"{BUCKET_PREFIX}_{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def install(app: Flask, settings: Settings, bus_client: BusClient) -> None:
    runner = bus_client if settings.nats_url else None
    limiter = build_run_limiter(settings.report_max_concurrent, runner,
                                prefix=bucket_prefix(settings))  # fmt: skip
    app.extensions[EXTENSION] = limiter
    app.logger.info("report runs: %s", limiter.describe())
    app.register_error_handler(RunLimitBusy, busy_response)


def run_limiter() -> RunLimiter:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def take_slot() -> Hold:
    """A slot for one report run; RunLimitBusy (429) when none comes free in time."""
    ticket = request.headers.get(TICKET_HEADER, "")[:64] or None
    return run_limiter().acquire(wait_s=DEFAULT_WAIT_S, ticket=ticket)


def busy_response(busy: RunLimitBusy) -> Any:
    headers = {"Retry-After": str(busy.retry_after_s)}
    if busy.ticket:
        headers[TICKET_HEADER] = busy.ticket
    message = f"Every report slot is busy: {busy.position} ahead of you. Try again shortly."
    if wants_json():
        body = {"error": message, "position": busy.position, "retry_after": busy.retry_after_s,
                "ticket": busy.ticket}  # fmt: skip
        return jsonify(body), 429, headers
    return error_response(429, message, headers=headers)


def _appdb():  # type: ignore[no-untyped-def]
    return current_app.extensions["manireports"].appdb


@contextmanager
def limited_run(wanted: ReportRequest, *, viewer_id: int, origin: str) -> Iterator[RunRecord]:
    """One report execution under the limit, recorded: set `run.row_count` inside."""
    with run_slot(), recorded_run(
        _appdb(), viewer_id=viewer_id, company_id=wanted.ctx.scope.company_id,
        report=wanted.report, params=wanted.params, origin=origin,
    ) as run:  # fmt: skip
        yield run


def run_recorder(
    viewer_id: int, company_id: int | None, origin: str
) -> Callable[[Any, dict[str, Any]], AbstractContextManager[RunRecord]]:
    """`recorded(report, params)` for the dashboards: one recorded run per report shown."""
    appdb = _appdb()

    def recorded(report: Any, params: dict[str, Any]) -> AbstractContextManager[RunRecord]:
        return recorded_run(appdb, viewer_id=viewer_id, company_id=company_id, report=report,
                            params=params, origin=origin)  # fmt: skip

    return recorded


@contextmanager
def run_slot() -> Iterator[Hold]:
    """One of the limit's slots for the block (429 when none comes free in time)."""
    hold = take_slot()
    try:
        yield hold
    finally:
        hold.release()


@contextmanager
def form_slot(field: str) -> Iterator[None]:
    """A slot for a form's own query (a preview, the columns a saved report learns): a busy
    limit becomes the form's error on `field`, so the page comes back with its input kept."""
    try:
        hold = take_slot()
    except RunLimitBusy as busy:
        raise FieldError(field, f"every report slot is busy ({busy.position} ahead of you): "
                         "try again in a moment", status=429) from None  # fmt: skip
    try:
        yield
    finally:
        hold.release()


def limited_stream(
    wanted: ReportRequest,
    *,
    viewer_id: int,
    origin: str,
    prepare: Callable[[RowCounter], Iterable[bytes]],
) -> tuple[Iterator[bytes], Callable[[], None]]:
    """A streamed export under the limit, recorded: `prepare(count)` builds the body (work
    before the first byte happens inside it) with `count` wrapped around the rows it writes.
    Returns the body and the `on_close` that gives the slot back and records a run the
    client left before its end as cancelled."""
    hold = take_slot()
    appdb = _appdb()
    try:
        run = start_run(appdb, viewer_id=viewer_id, company_id=wanted.ctx.scope.company_id,
                        report=wanted.report, params=wanted.params, origin=origin)  # fmt: skip
    except BaseException:
        hold.release()
        raise

    def count(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        run.row_count = 0
        for row in rows:
            run.row_count += 1
            yield row

    try:
        body = prepare(count)
    except BaseException as exc:
        finish_run(appdb, run, exc)
        hold.release()
        raise

    def streamed() -> Iterator[bytes]:
        try:
            yield from body
        except BaseException as exc:
            finish_run(appdb, run, exc)
            raise
        finish_run(appdb, run, None)
        hold.release()  # the last byte is out: the slot is free before the response closes

    def on_close() -> None:
        finish_run(appdb, run, GeneratorExit())  # nothing when already finished
        hold.release()

    stream = streamed()
    # A response dropped without close() (a client that never read it) still frees its slot.
    weakref.finalize(stream, on_close)
    return stream, on_close
