"""A WSGI app served on 127.0.0.1 at a free port in a background thread, for the HTTP fakes."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        """Test runs do not need a line per request."""


class LocalWsgiServer:
    def __init__(self, app: Callable) -> None:
        self._server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_QuietRequestHandler
        )
        # A short poll interval: shutdown() waits for the next poll, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


class QueuedFaults:
    """Responses to give instead of the normal answer, each for a number of requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Callable[[], Response]] = deque()
        self._requests_before_faults = 0

    def add(
        self, times: int, make_response: Callable[[], Response], after_requests: int = 0
    ) -> None:
        """Answer ``times`` requests with ``make_response()`` once ``after_requests`` passed."""
        with self._lock:
            self._queue.extend([make_response] * times)
            self._requests_before_faults = after_requests

    def next(self) -> Response | None:
        with self._lock:
            if not self._queue:
                return None
            if self._requests_before_faults:
                self._requests_before_faults -= 1
                return None
            return self._queue.popleft()()


class FakeEmailApi:
    """What the SendGrid and Mailgun fakes share: a local server, queued faults, rejected
    addresses and the deliveries each recipient got. Subclasses answer in `_respond`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deliveries: dict[str, list[Any]] = defaultdict(list)
        self._rejected: set[str] = set()
        self._faults = QueuedFaults()
        self._http = LocalWsgiServer(self._wsgi)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def reject(self, address: str) -> None:
        """Treat ``address`` as one the service refuses to send to."""
        with self._lock:
            self._rejected.add(address.lower())

    def delivered(self, address: str) -> list[Any]:
        with self._lock:
            return list(self._deliveries.get(address.lower(), []))

    @property
    def recipients(self) -> set[str]:
        with self._lock:
            return set(self._deliveries)

    def _wsgi(self, environ: dict, start_response: Any) -> Any:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        raise NotImplementedError
