"""What the loopback test servers share: a ``ThreadingHTTPServer`` on 127.0.0.1 served from a background thread.

:class:`LoopbackHTTPServer` owns the lifecycle (``start``/``stop``, ``running``, ``port``, context manager);
subclasses name their handler, error type and thread, and hook server-specific work into ``_on_start`` and
``_on_stop`` (``_on_stop`` runs before the socket is shut down, e.g. to interrupt a running job).
:class:`LoopbackHandler` is the quiet, one-request-per-connection request handler they build on.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self


class JoiningHTTPServer(ThreadingHTTPServer):
    """Request threads are joined on close so nothing outlives ``stop()``."""

    daemon_threads = False
    block_on_close = True
    owner: Any  # the LoopbackHTTPServer serving through this socket


class LoopbackHandler(BaseHTTPRequestHandler, ABC):
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads
    timeout = 10  # a client that connects and says nothing cannot block shutdown for long

    def log_message(self, format: str, *args: Any) -> None:
        """Keep pytest output quiet."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    @abstractmethod
    def _dispatch(self, method: str) -> None:
        """Answer one request (each server's handler implements its own routes)."""

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


class LoopbackHTTPServer:
    """Serves ``handler_class`` over real HTTP on ``host`` (a free port by default) from a daemon thread."""

    handler_class: ClassVar[type[LoopbackHandler]]
    server_class: ClassVar[type[JoiningHTTPServer]] = JoiningHTTPServer
    error_class: ClassVar[type[Exception]] = RuntimeError
    thread_name: ClassVar[str] = "loopback"  # the thread is named ``{thread_name}-{port}``
    noun: ClassVar[str] = "server"  # in error messages: "the server is not running"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: JoiningHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _on_start(self) -> None:
        """Runs before the socket is bound."""

    def _on_stop(self) -> None:
        """Runs before the socket is shut down (only when running)."""

    def start(self) -> Self:
        """Bind a free port and serve from a background thread."""
        if self._server is not None:
            raise self.error_class(f"the {self.noun} is already running")
        self._on_start()
        server = self.server_class((self._host, self._port), self.handler_class)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.thread_name}-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and join the server thread (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._on_stop()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)
            if thread.is_alive():
                raise self.error_class(f"the {self.noun} thread did not stop")
        self._server = None
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise self.error_class(f"the {self.noun} is not running")
        return int(self._server.server_address[1])

    @property
    def _origin(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self._host}:{self.port}"
