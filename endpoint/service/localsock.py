"""The daemon's local socket: employees list and register their own agents without sudo.

The daemon (root) listens on a Unix-domain socket that every local user may connect to; each request is
authorised by the peer's uid as the kernel tells it (``SO_PEERCRED``), never by anything the client
says. The protocol is one JSON object per line, at most ``MAX_REQUEST_BYTES`` each, answered by one JSON
object per line: ``{"ok": true, ...}`` or ``{"ok": false, "code": ..., "error": "one line"}``.

- ``{"op": "list"}``: the caller's own sightings (root: every user's), what was registered from this
  machine, and the collector's status of each registration when it answers.
- ``{"op": "show", "id": ID}``: one of the caller's own sightings by id or unique prefix (another user's
  is answered as unknown, exactly as an id that matches nothing).
- ``{"op": "register", "sighting_id": ..., <RegistrationCreate fields>}``: checked (owner, limits) and
  sent to the collector with the device key; the collector's registration, or why not.

Root may add ``"as_user": NAME`` to act for that user only (``sudo agentroster register``); from any
other uid it is refused. The peer's uid comes from SO_PEERCRED on Linux and LOCAL_PEERCRED on macOS
(``_peer_common`` picks ``_peer_linux`` or ``_peer_macos``).

Windows has no Unix-domain socket in CPython: there the same protocol runs over a named pipe
(``_pipe_windows``), whose peer is the client's token (SID, account name, elevated or not). Both
transports share what happens once a client is connected: ``Admission`` (how many clients at once, and per
user) and ``serve_connection`` (the request loop over a ``Connection``). ``serve`` and ``call`` pick the
transport of this OS.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from endpoint.errors import EndpointError
from endpoint.service._peer_common import peer_uid_function

log = logging.getLogger("agentroster.localsock")

SOCKET_NAME = "agentroster.sock"
RUN_DIRS = {"linux": Path("/run/agentroster"), "macos": Path("/var/run/agentroster")}
MAX_REQUEST_BYTES = 64 << 10  # one request line, newline included
MAX_ANSWER_BYTES = 32 << 20  # what a client accepts (root's list of every sighting)
MAX_CLIENTS = 8  # connections served at once; more are told "busy" and closed
MAX_CLIENTS_PER_USER = 4  # of those, from one uid other than root (one user cannot starve the others)
MAX_REQUESTS_PER_CONNECTION = 32
READ_TIMEOUT_S = 5.0  # to send one whole request line (a slow client is dropped, not waited for)
WRITE_TIMEOUT_S = 5.0  # to take one answer
CLIENT_TIMEOUT_S = 60.0  # what `agentroster register` waits for an answer


class LocalSocketError(EndpointError):
    """The local socket cannot be served (a bad path or directory, or another daemon serves it)."""

    code = "local_socket_unavailable"


class DaemonNotListening(EndpointError):
    """No daemon answers on the socket (not running, or no socket on this OS): use the direct path."""

    code = "daemon_not_listening"


# -- pure: where the socket is, and the framing ----------------------------------------------------------------


def socket_path(data_dir: str | os.PathLike[str], platform: str | None = None) -> Path:
    """The socket beside the data dir: the OS's run dir for the default data dir, else ``<data dir>.run/``
    (the data dir itself is 0700, so the socket cannot live in it)."""
    from endpoint.scan.platforms import default_data_dir, normalize_platform

    plat = normalize_platform(platform)
    data = Path(data_dir)
    if plat == "windows":
        from endpoint.service._pipe_windows import pipe_name

        return Path(pipe_name(str(data_dir), default=str(data_dir) == str(default_data_dir(plat))))
    if plat in RUN_DIRS and data == default_data_dir(plat):
        return RUN_DIRS[plat] / SOCKET_NAME
    return data.with_name(data.name + ".run") / SOCKET_NAME


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
                     read_timeout_s: float, write_timeout_s: float, admission: Admission | None = None,
                     on_answer: Callable[[], None] | None = None) -> None:
    """Answer up to ``MAX_REQUESTS_PER_CONNECTION`` request lines of one client, then return (the caller
    closes ``conn``). ``peer`` is who the client is, or how to find out once its first line is read (a
    named pipe tells its client's token only after a read); with ``admission`` that user is counted
    against its per-user limit from then on. A bug in one request is answered, logged and survived."""
    counted: Peer | None = None
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
            if admission is not None and counted is None:
                busy = admission.user(peer)
                if busy:
                    _send(conn, error("busy", busy + "; try again"), write_timeout_s)
                    return
                counted = peer
            try:
                answer = handler.answer(line, peer)
            except Exception:  # a bug in one request must not take the daemon (or this thread) down
                log.exception("local socket: request failed")
                answer = error("internal", "the daemon could not answer this request (see its log)")
            if on_answer is not None:
                on_answer()
            _send(conn, answer, write_timeout_s)
    except OSError:  # the client went away, or would not take its answer in time
        pass
    finally:
        if admission is not None and counted is not None:
            admission.release_user(counted)


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


def serve(path: str | os.PathLike[str], handler: RequestHandler) -> Server:
    """The local server of this OS (not started): a Unix socket at ``path``, or on Windows the named pipe
    of that name."""
    if sys.platform == "win32":
        from endpoint.service._pipe_windows import PipeServer

        return PipeServer(str(path), handler)
    return LocalServer(path, handler)


# -- the Unix-domain socket (Linux, macOS) ---------------------------------------------------------------------


class _SocketConnection:
    """A connected Unix socket as a ``Connection``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv(self, size: int, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        return self.sock.recv(size)

    def send(self, data: bytes, timeout: float) -> None:
        self.sock.settimeout(timeout)
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


class LocalServer:
    """A thread accepting connections on the socket, and one short-lived thread per client (at most
    ``max_clients``); ``stop()`` closes everything and removes the socket."""

    def __init__(self, path: str | os.PathLike[str], handler: RequestHandler, *, max_clients: int = MAX_CLIENTS,
                 max_clients_per_user: int = MAX_CLIENTS_PER_USER, read_timeout_s: float = READ_TIMEOUT_S,
                 write_timeout_s: float = WRITE_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.handler = handler
        self.read_timeout_s = read_timeout_s
        self.write_timeout_s = write_timeout_s
        self.admission = Admission(max_clients, max_clients_per_user)
        self._peer_uid = peer_uid_function()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._inode: tuple[int, int] | None = None
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.served = 0

    @property
    def refused_busy(self) -> int:
        return self.admission.refused_busy

    # -- start / stop ------------------------------------------------------------------------------------
    def start(self) -> None:
        prepare_dir(self.path.parent)
        remove_stale(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            os.chmod(self.path, 0o666)  # any local user connects; each request is checked by peer uid
            listener.listen(64)
            listener.setblocking(False)
            st = os.lstat(self.path)
        except OSError as exc:
            listener.close()
            raise LocalSocketError(f"{self.path}: {exc.strerror or exc}") from None
        self._inode = (st.st_dev, st.st_ino)
        self._listener = listener
        self._wake_r, self._wake_w = os.pipe()
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._accept_loop, args=(sel,), name="agentroster-localsock",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        if self._thread is None:
            return
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(timeout)
        with self._lock:
            for conn in list(self._clients):
                try:
                    conn.shutdown(socket.SHUT_RDWR)  # a client thread blocked in recv wakes up and ends
                except OSError:
                    pass
        if self._listener is not None:
            self._listener.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._thread = None
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        except OSError:
            pass

    # -- serving -------------------------------------------------------------------------------------------
    def _accept_loop(self, sel: selectors.BaseSelector) -> None:
        assert self._listener is not None
        with sel:
            while True:
                ready = {key.fileobj for key, _ in sel.select()}
                if self._wake_r in ready:
                    return
                try:
                    conn, _ = self._listener.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue
                except OSError as exc:  # EMFILE and the like: wait a little rather than spin
                    log.warning("local socket: accept: %s", exc.strerror or exc)
                    time.sleep(0.1)
                    continue
                self._dispatch(conn)

    def _dispatch(self, conn: socket.socket) -> None:
        """Hand the connection to a thread of its own, or answer at once (busy, unknown peer) and close."""
        try:
            uid = self._peer_uid(conn)
        except (OSError, NotImplementedError) as exc:
            self._refuse(conn, error("unsupported", str(exc)))
            return
        peer = Peer(uid, superuser=uid == 0)
        busy = self.admission.user(peer)
        if not busy:
            busy = self.admission.slot()
            if busy:
                self.admission.release_user(peer)
        if busy:
            self._refuse(conn, error("busy", busy + "; try again"))
            return
        with self._lock:
            self._clients.add(conn)
        try:
            threading.Thread(target=self._serve, args=(conn, peer), name="agentroster-localsock-client",
                             daemon=True).start()
        except RuntimeError:  # no thread to be had: drop this client, keep accepting
            self._forget(conn, peer)

    @staticmethod
    def _refuse(conn: socket.socket, doc: Mapping[str, Any]) -> None:
        conn.setblocking(False)  # the accept thread never waits on a client
        try:
            conn.send(encode(doc))
        except OSError:
            pass
        conn.close()

    def _forget(self, conn: socket.socket, peer: Peer) -> None:
        with self._lock:
            self._clients.discard(conn)
        self.admission.release_user(peer)
        self.admission.release_slot()
        conn.close()

    def _count(self) -> None:
        self.served += 1

    def _serve(self, conn: socket.socket, peer: Peer) -> None:
        conn.setblocking(True)
        try:
            serve_connection(_SocketConnection(conn), peer, self.handler, read_timeout_s=self.read_timeout_s,
                             write_timeout_s=self.write_timeout_s, on_answer=self._count)
        finally:
            self._forget(conn, peer)


def prepare_dir(directory: Path) -> None:
    """The socket's directory: made 0755 if missing; a symlink, a non-directory, or one that another user
    owns is refused (they could swap the socket for their own)."""
    try:
        directory.mkdir(mode=0o755, exist_ok=True)
        st = os.lstat(directory)
    except OSError as exc:
        raise LocalSocketError(f"{directory}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise LocalSocketError(f"{directory}: not a directory")
    if st.st_uid != os.geteuid():
        raise LocalSocketError(f"{directory}: owned by uid {st.st_uid}, not by the daemon's user")
    if stat.S_IMODE(st.st_mode) != 0o755:
        os.chmod(directory, 0o755)


def remove_stale(path: Path) -> None:
    """A socket left by a daemon that died is removed; one a live daemon answers on, or anything that is
    not a socket, is refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LocalSocketError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise LocalSocketError(f"{path}: exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise LocalSocketError(f"{path}: another daemon is listening on it")


# -- the client ----------------------------------------------------------------------------------------------


def trusted(path: Path) -> None:
    """Refuse a socket (or its directory) that neither root nor this user owns: another user could have
    put it there to collect what is sent."""
    euid = os.geteuid()
    for where in (path.parent, path):
        try:
            owner = os.lstat(where).st_uid
        except OSError as exc:
            raise DaemonNotListening(f"{where}: {exc.strerror or exc}") from None
        if owner not in (0, euid):
            raise OSError(f"{where} belongs to uid {owner}, not to root: not the daemon's; not used")


def call(path: str | os.PathLike[str], request: Mapping[str, Any], *,
         timeout_s: float = CLIENT_TIMEOUT_S) -> dict[str, Any]:
    """Send one request and return the daemon's answer; ``DaemonNotListening`` when nobody is there."""
    if sys.platform == "win32":
        from endpoint.service._pipe_windows import call_pipe

        return read_answer(call_pipe(str(path), encode(request), timeout_s=timeout_s))
    if not hasattr(socket, "AF_UNIX"):
        raise DaemonNotListening("no local socket on this OS")
    trusted(Path(path))
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout_s)
    try:
        try:
            conn.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError, PermissionError) as exc:
            raise DaemonNotListening(f"{path}: {exc.strerror or exc}") from None
        conn.sendall(encode(request))
        data = bytearray()
        while b"\n" not in data:
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_ANSWER_BYTES:
                raise OSError(f"the daemon's answer is larger than {MAX_ANSWER_BYTES} bytes")
    finally:
        conn.close()
    return read_answer(bytes(data))


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
