"""The protocol the daemon's local transports share: limits, framing, who the peer is, and the request loop.

The daemon serves users on a Unix-domain socket (``localsock``, Linux and macOS) and on a named pipe
(``_pipe_windows``, Windows). Once a client is connected, both do the same: ``Admission`` decides how many
clients are served at once and per user, ``serve_connection`` reads request lines (one JSON object per
line, at most ``MAX_REQUEST_BYTES``) and answers each with one line, ``{"ok": true, ...}`` or
``{"ok": false, "code": ..., "error": "one line"}``. The peer is always what the OS said of the client,
never what the client wrote.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from endpoint.errors import EndpointError

log = logging.getLogger("agentroster.localsock")

MAX_REQUEST_BYTES = 64 << 10  # one request line, newline included
MAX_ANSWER_BYTES = 32 << 20  # what a client accepts (root's list of every sighting)
MAX_CLIENTS = 8  # connections served at once; more are told "busy" and closed
MAX_CLIENTS_PER_USER = 4  # of those, from one uid other than root (one user cannot starve the others)
MAX_REQUESTS_PER_CONNECTION = 32
READ_TIMEOUT_S = 5.0  # to send one whole request line (a slow client is dropped, not waited for)
WRITE_TIMEOUT_S = 5.0  # to take one answer


class LocalSocketError(EndpointError):
    """The local socket cannot be served (a bad path or directory, or another daemon serves it)."""

    code = "local_socket_unavailable"


class DaemonNotListening(EndpointError):
    """No daemon answers on the socket (not running, or no socket on this OS): use the direct path."""

    code = "daemon_not_listening"



def error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": " ".join(str(message).split())[:500]}


def encode(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


# -- what both transports share once a client is connected ---------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """Who is at the other end, as the OS tells it (never as the client says): ``key`` counts connections
    (a uid, or a Windows SID), ``superuser`` may list every user's agents and act for one (root; on Windows
    SYSTEM or an elevated administrator), ``name`` is the account where the transport knows it."""

    key: int | str
    superuser: bool
    name: str | None = None


class RequestHandler(Protocol):
    """Answers one request line of one peer (``registration.socket_handler.Handler``)."""

    def answer(self, line: bytes, peer: Peer) -> dict[str, Any]: ...


class Connection(Protocol):
    """One connected client, whatever carries it (a Unix socket, a named pipe instance)."""

    def recv(self, size: int, timeout: float) -> bytes:
        """At most ``size`` bytes, b"" at the end; ``TimeoutError`` when nothing came within ``timeout``."""
        ...

    def send(self, data: bytes, timeout: float) -> None:
        """All of ``data``; ``OSError`` (``TimeoutError``) when the client does not take it in time."""
        ...

    def close(self) -> None: ...


class Admission:
    """How many clients are served at once (``max_clients``) and, of those, how many from one user other
    than the superuser (``max_per_user``): one user cannot starve the others."""

    def __init__(self, max_clients: int, max_per_user: int) -> None:
        self.max_clients = max_clients
        self.max_per_user = max_per_user
        self._slots = threading.BoundedSemaphore(max_clients)
        self._per_key: dict[int | str, int] = {}
        self._lock = threading.Lock()
        self.refused_busy = 0

    def slot(self) -> str:
        """Take one of the ``max_clients`` slots: "" when taken, else why not (answered as "busy")."""
        if self._slots.acquire(blocking=False):
            return ""
        with self._lock:
            self.refused_busy += 1
        return f"the daemon is serving {self.max_clients} clients"

    def release_slot(self) -> None:
        self._slots.release()

    def user(self, peer: Peer) -> str:
        """Count one more connection of ``peer``'s user: "" when within the limit, else why not."""
        with self._lock:
            mine = self._per_key.get(peer.key, 0)
            if not peer.superuser and mine >= self.max_per_user:
                self.refused_busy += 1
                return f"{_who(peer)} already has {mine} connections open"
            self._per_key[peer.key] = mine + 1
            return ""

    def release_user(self, peer: Peer) -> None:
        with self._lock:
            left = self._per_key.get(peer.key, 1) - 1
            if left > 0:
                self._per_key[peer.key] = left
            else:
                self._per_key.pop(peer.key, None)


def _who(peer: Peer) -> str:
    return f"uid {peer.key}" if isinstance(peer.key, int) else "this user"


def serve_connection(conn: Connection, peer: Peer | Callable[[], Peer], handler: RequestHandler, *,
                     read_timeout_s: float, write_timeout_s: float,
                     on_answer: Callable[[], None] | None = None) -> None:
    """Answer up to ``MAX_REQUESTS_PER_CONNECTION`` request lines of one client, then return (the caller
    closes ``conn``, and counted it in its ``Admission`` when it accepted it). ``peer`` is who the client
    is, or how to find out once its first line is read (a named pipe tells its client's token only after a
    read). A bug in one request is answered, logged and survived."""
    try:
        buffer = bytearray()
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            line = _read_line(conn, buffer, read_timeout_s, write_timeout_s)
            if line is None:
                return
            if not isinstance(peer, Peer):
                try:
                    peer = peer()
                except OSError as exc:
                    _send(conn, error("unsupported", f"the daemon cannot tell who you are: {exc}"), write_timeout_s)
                    return
            try:
                answer = handler.answer(line, peer)
            except Exception:  # a bug in one request must not take the daemon (or this thread) down
                log.exception("local socket: request failed")
                answer = error("internal", "the daemon could not answer this request (see its log)")
            if on_answer is not None:
                on_answer()
            # not _send: a client that does not take its answer in time is dropped here, not answered 31 times
            # more, each waiting write_timeout_s, while it holds one of the daemon's few slots
            conn.send(encode(answer), write_timeout_s)
    except OSError:  # the client went away, or would not take its answer in time
        pass


def _read_line(conn: Connection, buffer: bytearray, read_timeout_s: float, write_timeout_s: float) -> bytes | None:
    """The next request line, or None at the end; a line too long or too slow is answered and ends."""
    deadline = time.monotonic() + read_timeout_s
    while True:
        end = buffer.find(b"\n")
        if end >= 0:
            if end + 1 > MAX_REQUEST_BYTES:
                break
            line = bytes(buffer[:end])
            del buffer[:end + 1]
            return line
        if len(buffer) >= MAX_REQUEST_BYTES:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            _send(conn, error("timeout", f"no whole request line within {read_timeout_s:g} s"), write_timeout_s)
            return None
        try:
            chunk = conn.recv(MAX_REQUEST_BYTES, left)
        except TimeoutError:
            continue
        if not chunk:
            if buffer.strip():
                _send(conn, error("bad_request", "a request must end with a newline"), write_timeout_s)
            return None
        buffer += chunk
    _send(conn, error("too_large", f"a request line is at most {MAX_REQUEST_BYTES} bytes"), write_timeout_s)
    return None


def _send(conn: Connection, doc: Mapping[str, Any], timeout: float) -> None:
    try:
        conn.send(encode(doc), timeout)
    except OSError:
        pass


class Server(Protocol):
    """What the daemon holds of its local server, whichever the transport."""

    served: int

    def start(self) -> None: ...

    def stop(self, timeout: float = 1.0) -> None: ...


class Serving:
    """What both servers keep, whatever accepts their clients: the handler, the timeouts, the ``Admission``,
    and how many requests were answered (``served``) or refused as busy."""

    def __init__(self, handler: RequestHandler, *, max_clients: int, max_clients_per_user: int,
                 read_timeout_s: float, write_timeout_s: float) -> None:
        self.handler = handler
        self.read_timeout_s = read_timeout_s
        self.write_timeout_s = write_timeout_s
        self.admission = Admission(max_clients, max_clients_per_user)
        self.served = 0

    @property
    def refused_busy(self) -> int:
        return self.admission.refused_busy

    def serve(self, conn: Connection, peer: Peer | Callable[[], Peer]) -> None:
        """``serve_connection`` with this server's handler and timeouts, counting what it answers."""
        serve_connection(conn, peer, self.handler, read_timeout_s=self.read_timeout_s,
                         write_timeout_s=self.write_timeout_s, on_answer=self._count)

    def _count(self) -> None:
        self.served += 1


def read_answer(data: bytes) -> dict[str, Any]:
    """The daemon's answer in what it sent (its first line); ``OSError`` when it is not one."""
    line = data.partition(b"\n")[0]
    if not line.strip():
        raise OSError("the daemon closed the connection without an answer (see its log)")
    try:
        answer = json.loads(line)
    except ValueError:
        raise OSError("the daemon's answer is not JSON") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise OSError("the daemon's answer is not one this version understands")
    return answer
