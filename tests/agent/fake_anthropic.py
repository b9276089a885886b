"""A local stand-in for Anthropic's Messages endpoint (POST /v1/messages).

The real ``anthropic`` client talks to it through ``ANTHROPIC_BASE_URL``. Responses are
scripted per conversation turn, where a request's turn is 1 + the number of assistant
messages it carries; so a retried turn is recognised as the same turn. Each turn has a
list of responses used in order (the last one repeats): ``reply(...)`` for a message,
``error(status, ...)`` for an API error, ``hold(...)`` to keep the request open until
the test releases it. Every request is recorded with its parsed body.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from support import wait_until


@dataclass(frozen=True)
class Reply:
    content: tuple[dict[str, Any], ...]
    stop_reason: str
    input_tokens: int = 10
    output_tokens: int = 5


@dataclass(frozen=True)
class Error:
    status: int
    kind: str
    message: str


@dataclass
class Hold:
    """Keep the request open until ``release`` is set, then send ``then``."""

    then: Reply | Error
    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(tool_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


def reply(
    *content: dict[str, Any],
    stop_reason: str | None = None,
    input_tokens: int = 10,
    output_tokens: int = 5,
) -> Reply:
    if stop_reason is None:
        stop_reason = (
            "tool_use" if any(block["type"] == "tool_use" for block in content) else "end_turn"
        )
    return Reply(tuple(content), stop_reason, input_tokens, output_tokens)


def error(status: int, kind: str | None = None, message: str | None = None) -> Error:
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }
    kind = kind or kinds.get(status, "api_error")
    return Error(status, kind, message or f"stand-in {kind}")


@dataclass(frozen=True)
class Recorded:
    turn: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body["messages"]

    def tool_results(self) -> dict[str, dict[str, Any]]:
        """The tool_result blocks of the request's last message, by tool_use_id."""
        last = self.messages[-1]
        if last["role"] != "user" or not isinstance(last["content"], list):
            return {}
        return {
            block["tool_use_id"]: block
            for block in last["content"]
            if block.get("type") == "tool_result"
        }


class FakeAnthropic:
    def __init__(self, script: dict[int, list[Reply | Error | Hold]]) -> None:
        self._script = {turn: list(responses) for turn, responses in script.items()}
        self._used: dict[int, int] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.requests: list[Recorded] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-anthropic", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def stop(self) -> None:
        for responses in self._script.values():
            for item in responses:
                if isinstance(item, Hold):
                    item.release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_for(self, turn: int) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.turn == turn]

    def turns(self) -> list[int]:
        with self._lock:
            return [r.turn for r in self.requests]

    def wait_for(
        self, condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
    ) -> None:
        try:
            wait_until(condition, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; requests so far: turns {self.turns()}") from None

    def _next(self, turn: int) -> Reply | Error | Hold:
        with self._lock:
            responses = self._script.get(turn)
            if not responses:
                return error(500, "api_error", f"the stand-in has no script for turn {turn}")
            used = self._used.get(turn, 0)
            self._used[turn] = used + 1
            return responses[min(used, len(responses) - 1)]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.split("?")[0] != "/v1/messages":
                    self._send(
                        404,
                        {
                            "type": "error",
                            "error": {"type": "not_found_error", "message": self.path},
                        },
                    )
                    return
                turn = 1 + sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
                with fake._lock:
                    fake.requests.append(
                        Recorded(turn, body, {k.lower(): v for k, v in self.headers.items()})
                    )
                item = fake._next(turn)
                if isinstance(item, Hold):
                    item.held.set()
                    item.release.wait(60)
                    item = item.then
                try:
                    if isinstance(item, Error):
                        self._send(
                            item.status,
                            {
                                "type": "error",
                                "error": {"type": item.kind, "message": item.message},
                            },
                        )
                    else:
                        self._send(
                            200,
                            {
                                "id": f"msg_stand_in_{next(fake._ids)}",
                                "type": "message",
                                "role": "assistant",
                                "model": body.get("model"),
                                "content": list(item.content),
                                "stop_reason": item.stop_reason,
                                "stop_sequence": None,
                                "usage": {
                                    "input_tokens": item.input_tokens,
                                    "output_tokens": item.output_tokens,
                                },
                            },
                        )
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client was killed while the request was held: expected in the crash test

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("request-id", f"req_stand_in_{status}")
                self.end_headers()
                self.wfile.write(data)

        return Handler
