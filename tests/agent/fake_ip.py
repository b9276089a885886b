"""A local stand-in for the public-IP service behind ``/network/current-ip``."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TEST_IP = "203.0.113.7"
"""An address from the documentation range (RFC 5737): never a real machine."""


class FakeIpService:
    """Answers every GET with ``answer``; with ``hold_first``, keeps the first request
    open (``held`` is set when it arrives) until the test sets ``release``."""

    def __init__(self, answer: str = TEST_IP, status: int = 200, hold_first: bool = False) -> None:
        self.answer = answer
        self.status = status
        self.requests = 0
        self.hold_first = hold_first
        self.held = threading.Event()
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-ip", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> FakeIpService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests += 1
                if fake.hold_first and fake.requests == 1:
                    fake.held.set()
                    fake.release.wait(60)
                body = fake.answer.encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
