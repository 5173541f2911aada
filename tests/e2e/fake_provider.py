"""A tiny fake LLM provider on 127.0.0.1 for real agent tools started by the e2e tests.

It speaks just enough of the Anthropic Messages API (``POST /v1/messages``, streamed or not) and the
OpenAI Chat Completions API (``POST /v1/chat/completions``) for an agent to get one short, valid
answer, after an optional delay so the agent stays busy. Every other path gets an empty JSON 200.
Each request is appended to a JSON-lines log (method, path, header names only: never a key).

Run it in the agent's network namespace: ``python fake_provider.py --port-file FILE [--delay S]``;
it writes the port it bound to FILE once it is listening.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPLY = "Hello from the local test provider."


def anthropic_message(model: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": REPLY}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 8},
    }


def anthropic_events(model: str) -> list[tuple[str, dict[str, Any]]]:
    """The server-sent events of one streamed Messages API answer, in order."""
    start = {**anthropic_message(model), "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": 10, "output_tokens": 1}
    return [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": REPLY}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 8}}),
        ("message_stop", {"type": "message_stop"}),
    ]


def openai_completion(model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18},
    }


def openai_chunks(model: str) -> list[dict[str, Any]]:
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}
    return [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": REPLY}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]


class ProviderHandler(BaseHTTPRequestHandler):
    server: ProviderServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the JSON-lines log below is the record

    def _record(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        entry = {"method": self.command, "path": self.path, "headers": sorted(self.headers.keys()),
                 "model": body.get("model") if isinstance(body, dict) else None, "time": time.time()}
        self.server.log(entry)
        return body if isinstance(body, dict) else {}

    def _json(self, status: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str | None, dict[str, Any]]], *, done: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for name, data in events:
            prefix = f"event: {name}\n" if name else ""
            self.wfile.write(f"{prefix}data: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()
        if done:
            self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._record()
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"},
                                                        {"id": "claude-sonnet-4-5", "type": "model"}]})
        else:
            self._json(200, {})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self._record()
        time.sleep(self.server.delay)
        model = str(body.get("model") or "test-model")
        path = self.path.split("?", 1)[0]
        if path.endswith("/messages/count_tokens"):
            self._json(200, {"input_tokens": 10})
        elif path.endswith("/messages"):
            if body.get("stream"):
                self._sse(list(anthropic_events(model)))
            else:
                self._json(200, anthropic_message(model))
        elif path.endswith("/chat/completions"):
            if body.get("stream"):
                self._sse([(None, c) for c in openai_chunks(model)], done=True)
            else:
                self._json(200, openai_completion(model))
        else:
            self._json(200, {})


class ProviderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, *, delay: float, log_path: Path | None) -> None:
        super().__init__(("127.0.0.1", port), ProviderHandler)
        self.delay = delay
        self.log_path = log_path
        self._lock = threading.Lock()

    def log(self, entry: dict[str, Any]) -> None:
        if self.log_path is None:
            return
        with self._lock, self.log_path.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering a POST")
    parser.add_argument("--log", type=Path, default=None, help="JSON-lines request log")
    args = parser.parse_args()
    server = ProviderServer(args.port, delay=args.delay, log_path=args.log)
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(args.port_file)  # atomic: a reader never sees a half-written port
    server.serve_forever()


if __name__ == "__main__":
    main()
