"""A real S3 server on loopback for tests: moto's server mode, one per session, a fresh bucket per test."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from moto.server import ThreadedMotoServer

ACCESS_KEY_ID = "rupali-test-key"
SECRET_ACCESS_KEY = "rupali-test-secret"  # moto accepts any credentials
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """Where the loopback server listens."""

    endpoint_url: str

    def create_bucket(self, name: str | None = None) -> str:
        """A new empty bucket (moto needs no signature for this: plain S3 ``PUT /bucket``)."""
        bucket = name or f"rupali-{uuid.uuid4().hex[:16]}"
        response = httpx.put(f"{self.endpoint_url}/{bucket}", timeout=10)
        response.raise_for_status()
        return bucket

    def env(self, bucket: str, *, prefix: str = "") -> dict[str, str]:
        """The settings that point Rupali at ``bucket``."""
        values = {"RUPALI_MEDIA_BACKEND": "s3", "RUPALI_S3_BUCKET": bucket, "RUPALI_S3_ENDPOINT_URL": self.endpoint_url,
                  "RUPALI_S3_REGION": REGION, "RUPALI_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
                  "RUPALI_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}
        if prefix:
            values["RUPALI_S3_PREFIX"] = prefix
        return values


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Run moto's S3 server on 127.0.0.1 and a free port until the block ends."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@contextmanager
def corrupting_proxy(upstream: str, corrupt: Callable[[str], bool]) -> Iterator[str]:
    """A loopback HTTP proxy in front of ``upstream`` that flips the first byte of every GET body whose path
    ``corrupt`` picks, like a disk or network fault between the bucket and us; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
            response = httpx.request(self.command, f"{upstream}{self.path}", content=body, headers=headers,
                                     timeout=30)
            content = response.content
            if self.command == "GET" and content and response.status_code in (200, 206) and corrupt(self.path):
                content = bytes([content[0] ^ 0xFF]) + content[1:]
            self.send_response(response.status_code)
            for name, value in response.headers.multi_items():
                if name.lower() not in _HOP_BY_HOP | {"content-length", "content-encoding"}:
                    self.send_header(name, value)
            # A HEAD answer has no body but tells the object's size.
            size = response.headers.get("content-length", "0") if self.command == "HEAD" else str(len(content))
            self.send_header("Content-Length", size)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
