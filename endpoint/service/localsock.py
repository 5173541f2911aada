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

import logging
import os
import selectors
import socket
import stat
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from endpoint.service._peer_common import peer_uid_function
from endpoint.service.localproto import (
    MAX_ANSWER_BYTES,
    MAX_CLIENTS,
    MAX_CLIENTS_PER_USER,
    MAX_REQUEST_BYTES,
    MAX_REQUESTS_PER_CONNECTION,
    READ_TIMEOUT_S,
    WRITE_TIMEOUT_S,
    Admission,
    Connection,
    DaemonNotListening,
    LocalSocketError,
    Peer,
    RequestHandler,
    Server,
    Serving,
    encode,
    error,
    read_answer,
    serve_connection,
)

__all__ = [  # the protocol's names too, for the callers that know this module only
    "CLIENT_TIMEOUT_S", "MAX_ANSWER_BYTES", "MAX_CLIENTS", "MAX_CLIENTS_PER_USER", "MAX_REQUEST_BYTES",
    "MAX_REQUESTS_PER_CONNECTION", "READ_TIMEOUT_S", "SOCKET_NAME", "WRITE_TIMEOUT_S", "Admission", "Connection",
    "DaemonNotListening", "LocalServer", "LocalSocketError", "Peer", "RequestHandler", "Server", "call", "encode",
    "error", "prepare_dir", "read_answer", "remove_stale", "serve", "serve_connection", "socket_path", "trusted",
]

log = logging.getLogger("agentroster.localsock")

SOCKET_NAME = "agentroster.sock"
RUN_DIRS = {"linux": Path("/run/agentroster"), "macos": Path("/var/run/agentroster")}
CLIENT_TIMEOUT_S = 60.0  # what `agentroster register` waits for an answer
# -- pure: where the socket is ----------------------------------------------------------------


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


class LocalServer(Serving):
    """A thread accepting connections on the socket, and one short-lived thread per client (at most
    ``max_clients``); ``stop()`` closes everything and removes the socket."""

    def __init__(self, path: str | os.PathLike[str], handler: RequestHandler, *, max_clients: int = MAX_CLIENTS,
                 max_clients_per_user: int = MAX_CLIENTS_PER_USER, read_timeout_s: float = READ_TIMEOUT_S,
                 write_timeout_s: float = WRITE_TIMEOUT_S) -> None:
        super().__init__(handler, max_clients=max_clients, max_clients_per_user=max_clients_per_user,
                         read_timeout_s=read_timeout_s, write_timeout_s=write_timeout_s)
        self.path = Path(path)
        self._peer_uid = peer_uid_function()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._inode: tuple[int, int] | None = None
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()

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

    def _serve(self, conn: socket.socket, peer: Peer) -> None:
        conn.setblocking(True)
        try:
            self.serve(_SocketConnection(conn), peer)
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
    # one deadline for the whole call, not one per chunk: a byte now and then must not hold the caller
    deadline = time.monotonic() + timeout_s
    try:
        try:
            conn.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError, PermissionError) as exc:
            raise DaemonNotListening(f"{path}: {exc.strerror or exc}") from None
        conn.sendall(encode(request))
        data = bytearray()
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                conn.settimeout(left)
                chunk = conn.recv(1 << 16)
            except TimeoutError:
                raise TimeoutError(f"{path}: no whole answer within {timeout_s:g} s") from None
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_ANSWER_BYTES:
                raise OSError(f"the daemon's answer is larger than {MAX_ANSWER_BYTES} bytes")
            if b"\n" in chunk:  # only the new chunk is searched, not all that came before
                break
    finally:
        conn.close()
    return read_answer(bytes(data))
