"""A tiny fake LLM provider on 127.0.0.1 for real agent tools started by the e2e tests.

It speaks just enough of the Anthropic Messages API (``POST /v1/messages``, streamed or not), the
OpenAI Chat Completions API (``POST /v1/chat/completions``) and the Ollama API (``/api/chat``,
``/api/generate``, ``/api/show``, ``/api/tags``) for an agent to get one short, valid answer, after an
optional delay so the agent stays busy. Every other path gets an empty JSON 200. Each request is
appended to a JSON-lines log (method, path, header names only: never a key).

Run it in the agent's network namespace: ``python fake_provider.py --port-file FILE [--delay S]``;
it writes the port it bound to FILE once it is listening. ``--tls-cert/--tls-key`` serve HTTPS (a
certificate from a test CA, for a provider's real hostname); ``--dns ADDRESS`` also answers every DNS
A query on ADDRESS:53 with the provider's own address, so a real hostname leads to it.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import struct
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


def ollama_reply(model: str, *, chat: bool, done: bool) -> dict[str, Any]:
    """One line of an Ollama ``/api/chat`` or ``/api/generate`` answer (NDJSON when streamed)."""
    line: dict[str, Any] = {"model": model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "done": done}
    text = "" if done else REPLY
    if chat:
        line["message"] = {"role": "assistant", "content": text}
    else:
        line["response"] = text
    if done:
        line.update({"done_reason": "stop", "prompt_eval_count": 10, "eval_count": 8})
    return line


OLLAMA_SHOW = {
    "modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
    "details": {"format": "gguf", "family": "llama", "parameter_size": "1B", "quantization_level": "Q4_0"},
    "model_info": {"general.architecture": "llama", "llama.context_length": 8192},
    "capabilities": ["completion"],
}


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

    def _ndjson(self, lines: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Connection", "close")
        self.end_headers()
        for line in lines:
            self.wfile.write(json.dumps(line).encode() + b"\n")
            self.wfile.flush()
        self.close_connection = True

    def _ollama(self, path: str, body: dict[str, Any]) -> bool:
        """Answer an Ollama API path; False when ``path`` is not one."""
        model = str(body.get("model") or body.get("name") or "llama3.2")
        if path == "/api/show":
            self._json(200, {**OLLAMA_SHOW, "model": model})
        elif path in ("/api/chat", "/api/generate"):
            time.sleep(self.server.delay)
            chat = path == "/api/chat"
            if body.get("stream", True):
                self._ndjson([ollama_reply(model, chat=chat, done=False), ollama_reply(model, chat=chat, done=True)])
            else:
                self._json(200, {**ollama_reply(model, chat=chat, done=True),
                                 **({"message": {"role": "assistant", "content": REPLY}} if chat else
                                    {"response": REPLY})})
        else:
            return False
        return True

    def do_GET(self) -> None:
        self._record()
        path = self.path.split("?", 1)[0]
        if path == "/api/tags":
            self._json(200, {"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 1}]})
        elif path == "/api/version":
            self._json(200, {"version": "0.12.0"})
        elif self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"},
                                                        {"id": "claude-sonnet-4-5", "type": "model"}]})
        else:
            self._json(200, {})

    def do_POST(self) -> None:
        body = self._record()
        path = self.path.split("?", 1)[0]
        if self._ollama(path, body):
            return
        time.sleep(self.server.delay)
        model = str(body.get("model") or "test-model")
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

    def __init__(self, port: int, *, delay: float, log_path: Path | None, host: str = "127.0.0.1") -> None:
        super().__init__((host, port), ProviderHandler)
        self.delay = delay
        self.log_path = log_path
        self._lock = threading.Lock()

    def log(self, entry: dict[str, Any]) -> None:
        if self.log_path is None:
            return
        with self._lock, self.log_path.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")


def dns_answer(query: bytes, address: str) -> bytes | None:
    """The answer to a DNS query: ``address`` for an A question, no records for any other type."""
    if len(query) < 12 or query[2] & 0x80:
        return None
    end = 12
    while end < len(query) and query[end]:
        end += 1 + query[end]
    if end + 5 > len(query):
        return None
    question = query[12 : end + 5]
    qtype = struct.unpack("!H", query[end + 1 : end + 3])[0]
    answers = b""
    if qtype == 1:
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 30, 4) + socket.inet_aton(address)
    header = struct.pack("!HHHHHH", struct.unpack("!H", query[:2])[0], 0x8180, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


def serve_dns(listen: str, address: str) -> None:
    """A DNS responder on ``listen``:53 (UDP) that sends every A query to ``address``; runs forever."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((listen, 53))
    while True:
        query, peer = sock.recvfrom(4096)
        reply = dns_answer(query, address)
        if reply is not None:
            sock.sendto(reply, peer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering a POST")
    parser.add_argument("--log", type=Path, default=None, help="JSON-lines request log")
    parser.add_argument("--tls-cert", type=Path, default=None, help="serve HTTPS with this certificate chain")
    parser.add_argument("--tls-key", type=Path, default=None)
    parser.add_argument("--dns", metavar="ADDRESS", default=None,
                        help="also answer DNS on ADDRESS:53, every A query with --host")
    args = parser.parse_args()
    server = ProviderServer(args.port, delay=args.delay, log_path=args.log, host=args.host)
    if args.tls_cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    if args.dns:
        threading.Thread(target=serve_dns, args=(args.dns, args.host), daemon=True).start()
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(args.port_file)  # atomic: a reader never sees a half-written port
    server.serve_forever()


if __name__ == "__main__":
    main()
