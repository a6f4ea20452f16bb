"""A plain TCP listener on 127.0.0.1 that counts connections and can greet with a banner.

Stands in for "some internal service" in the SSRF tests: a refused host must never be
connected to (the count stays 0), and whatever the service says must not reach a user.
"""

from __future__ import annotations

import socket
import threading


class TcpListener:
    def __init__(self, banner: bytes = b"") -> None:
        self.banner = banner
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self._lock = threading.Lock()
        self._connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def __enter__(self) -> TcpListener:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with self._lock:
                self._connections += 1
            try:
                if self.banner:
                    conn.sendall(self.banner)
            except OSError:
                pass
            finally:
                conn.close()
