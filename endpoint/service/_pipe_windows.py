"""The daemon's local socket on Windows: a named pipe carrying the same protocol (``localsock``).

CPython has no Unix-domain sockets on Windows, so there ``agentroster register``, ``agentroster status
--mine`` and the companion reach the daemon (a service running as SYSTEM) through ``\\\\.\\pipe\\agentroster``:
one JSON request per line, one JSON answer per line, the same limits and the same ``serve_connection``
loop as the socket (``localproto``). What differs is how each side knows the other:

- **Who may open it.** The pipe's access list lets SYSTEM and Administrators do anything, lets
  authenticated users read and write data only, and denies network logons; the pipe also rejects remote
  clients. Users are not granted ``FILE_CREATE_PIPE_INSTANCE`` (a bit of ``FILE_GENERIC_WRITE``): with it a
  user could add an instance of the daemon's pipe and answer other users' clients themselves.
- **Whether the name is ours.** The first instance is created with ``FILE_FLAG_FIRST_PIPE_INSTANCE``: when
  something else already holds the name (a user who created it before the service started, to collect
  what clients send), the daemon refuses to serve instead of adding an instance to another's pipe; it also
  checks the owner its instances show (a pipe's owner is its first instance's). Each next instance is made
  before the last one is handed to a client or closed: the name never goes free while the daemon runs.
- **Who the client is.** Its token, taken by impersonating it once its first line is read (a pipe gives
  the token of the last message read), then reverting at once: the SID, the account (``DOMAIN\\name``),
  and whether it is SYSTEM or an elevated administrator (Administrators enabled in the token), which may
  act for another user like root on Unix. Never anything the client writes.
- **Whether the server is the daemon.** A client opens the pipe at identification level only (the server
  can tell who it is, not act as it) and checks the pipe's owner before writing: SYSTEM, Administrators,
  or the client's own account (a daemon started by hand). Any other owner is someone's squatting pipe.

The pure parts (names, the access list, the masks) are tested on every OS; the rest runs under a real
Windows Python (under Wine in this project's tests). pywin32 is a Windows dependency of the endpoint.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
from typing import Any

from endpoint.service.localproto import (
    MAX_ANSWER_BYTES,
    MAX_CLIENTS,
    MAX_CLIENTS_PER_USER,
    READ_TIMEOUT_S,
    WRITE_TIMEOUT_S,
    DaemonNotListening,
    LocalSocketError,
    Peer,
    RequestHandler,
    Serving,
    encode,
    error,
)

log = logging.getLogger("agentroster.localsock")

PIPE_PREFIX = "\\\\.\\pipe\\"
PIPE_NAME = "agentroster"
SYSTEM_SID = "S-1-5-18"
ADMINISTRATORS_SID = "S-1-5-32-544"
TRUSTED_OWNERS = frozenset({SYSTEM_SID, ADMINISTRATORS_SID})

# access rights (winnt.h)
FILE_READ_DATA = 0x0001
FILE_WRITE_DATA = 0x0002
FILE_CREATE_PIPE_INSTANCE = 0x0004  # = FILE_APPEND_DATA
FILE_GENERIC_READ = 0x00120089
GENERIC_READ = 0x80000000
#: what users are granted: read, and write data; not FILE_CREATE_PIPE_INSTANCE, not WRITE_DAC/WRITE_OWNER
USER_ACCESS = FILE_GENERIC_READ | FILE_WRITE_DATA
#: what a client asks for when it opens the pipe (GENERIC_WRITE would ask for FILE_CREATE_PIPE_INSTANCE too,
#: which the access list denies users)
CLIENT_ACCESS = GENERIC_READ | FILE_WRITE_DATA
#: the pipe's security descriptor, in SDDL: network logons denied first, then SYSTEM and Administrators
#: full control, authenticated users ``USER_ACCESS``; protected (nothing inherited)
PIPE_SDDL = f"D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)(A;;{USER_ACCESS:#x};;;AU)"

BUFFER_BYTES = 64 << 10
CONNECT_RETRY_S = 0.1  # after a failed instance or connect: wait this long rather than spin
INSTANCE_RETRY_MAX_S = 5.0  # a new instance that keeps failing is retried at most this far apart


def pipe_name(data_dir: str, *, default: bool) -> str:
    """The pipe of the daemon whose data dir is ``data_dir``: ``\\\\.\\pipe\\agentroster`` for the default one,
    else a name of its own per data dir (two daemons with two data dirs never share a pipe)."""
    if default:
        return PIPE_PREFIX + PIPE_NAME
    digest = hashlib.sha256(data_dir.casefold().encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{PIPE_PREFIX}{PIPE_NAME}-{digest}"


def account(name: str | None, domain: str | None) -> str | None:
    """``DOMAIN\\name`` as psutil names a process's user (the form sightings carry), or the bare name."""
    if not name:
        return None
    return f"{domain}\\{name}" if domain else name


def owner_problem(owner_sid: str | None, own_sid: str) -> str | None:
    """Why a pipe owned by ``owner_sid`` (None: it has no owner) is not the daemon's, in words; None when it
    may be trusted."""
    if owner_sid is None:
        return "has no owner, so it is not the daemon's; not used"
    if owner_sid in TRUSTED_OWNERS or owner_sid == own_sid:
        return None
    return f"owned by {owner_sid}, not by SYSTEM or Administrators: not the daemon's; not used"


# -- Windows only -----------------------------------------------------------------------------------------------


def _os_error(exc: Any, where: str = "") -> OSError:
    """pywin32's error (not an OSError) as one, with Windows' own message."""
    winerror = getattr(exc, "winerror", 0)
    text = getattr(exc, "strerror", "") or str(exc)
    return OSError(winerror, f"{where}: {text}" if where else text)


if sys.platform == "win32":
    import pywintypes  # type: ignore[import-untyped,unused-ignore]
    import win32api  # type: ignore[import-untyped,unused-ignore]
    import win32event  # type: ignore[import-untyped,unused-ignore]
    import win32file  # type: ignore[import-untyped,unused-ignore]
    import win32pipe  # type: ignore[import-untyped,unused-ignore]
    import win32security  # type: ignore[import-untyped,unused-ignore]
    import winerror  # type: ignore[import-untyped,unused-ignore]

    _GONE = frozenset({winerror.ERROR_BROKEN_PIPE, winerror.ERROR_PIPE_NOT_CONNECTED, winerror.ERROR_NO_DATA})
    _SECURITY_SQOS_PRESENT = 0x00100000
    _SECURITY_IDENTIFICATION = 0x00010000
    _PIPE_REJECT_REMOTE_CLIENTS = 0x00000008
    _FILE_FLAG_FIRST_PIPE_INSTANCE = 0x00080000
    _PROCESS_QUERY_LIMITED_INFORMATION = 0x1000

    class PipeConnection:
        """One end of a pipe instance as a ``Connection``: overlapped reads and writes, each waited for with
        a timeout and cancelled past it, and woken early by ``stop`` (the server's stop event)."""

        def __init__(self, handle: Any, stop: Any = None) -> None:
            self.handle = handle
            self.stop = stop
            self.event = win32event.CreateEvent(None, True, False, None)

        def _finish(self, overlapped: Any, timeout: float) -> int:
            waits = [self.event] if self.stop is None else [self.event, self.stop]
            ms = max(0, min(int(timeout * 1000), 0x7FFFFFFE))
            ready = win32event.WaitForMultipleObjects(waits, False, ms)
            if ready != win32event.WAIT_OBJECT_0:
                try:
                    win32file.CancelIo(self.handle)
                    win32file.GetOverlappedResult(self.handle, overlapped, True)  # the cancel has landed
                except pywintypes.error:
                    pass
                if ready == win32event.WAIT_TIMEOUT:
                    raise TimeoutError("no answer in time")
                raise OSError("the daemon is stopping")
            try:
                return int(win32file.GetOverlappedResult(self.handle, overlapped, True))
            except pywintypes.error as exc:
                if exc.winerror in _GONE:
                    return -1
                raise _os_error(exc) from None

        def recv(self, size: int, timeout: float) -> bytes:
            overlapped = pywintypes.OVERLAPPED()
            overlapped.hEvent = self.event
            buffer = win32file.AllocateReadBuffer(size)
            try:
                win32file.ReadFile(self.handle, buffer, overlapped)
            except pywintypes.error as exc:
                if exc.winerror in _GONE:
                    return b""
                raise _os_error(exc) from None
            count = self._finish(overlapped, timeout)
            return b"" if count <= 0 else bytes(buffer[:count])

        def send(self, data: bytes, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            view = memoryview(data)
            while view:
                overlapped = pywintypes.OVERLAPPED()
                overlapped.hEvent = self.event
                try:
                    win32file.WriteFile(self.handle, view[:BUFFER_BYTES].tobytes(), overlapped)
                except pywintypes.error as exc:
                    raise _os_error(exc, "write") from None
                count = self._finish(overlapped, deadline - time.monotonic())
                if count <= 0:
                    raise BrokenPipeError("the other end closed the pipe")
                view = view[count:]

        def close(self) -> None:
            for handle in (self.handle, self.event):
                try:
                    handle.Close()
                except pywintypes.error:
                    pass

    def _close(handle: Any) -> None:
        try:
            handle.Close()
        except pywintypes.error:
            pass

    def _token_user(token: Any) -> tuple[Any, str]:
        sid = win32security.GetTokenInformation(token, win32security.TokenUser)[0]
        return sid, str(win32security.ConvertSidToStringSid(sid))

    def peer_of_token(token: Any) -> Peer:
        """The peer a client's token says it is: its SID, its account, and whether it is SYSTEM or an
        elevated administrator (Administrators enabled in the token: a filtered UAC token has it for deny
        only, and so is not)."""
        sid, text = _token_user(token)
        superuser = text == SYSTEM_SID
        if not superuser:
            admins = win32security.ConvertStringSidToSid(ADMINISTRATORS_SID)
            try:
                superuser = bool(win32security.CheckTokenMembership(token, admins))
            except pywintypes.error:
                superuser = False
        try:
            name, domain, _kind = win32security.LookupAccountSid(None, sid)
        except pywintypes.error:  # an account that no longer resolves: it sees nothing but what names its SID
            name, domain = None, None
        return Peer(text, superuser=superuser, name=account(name, domain))

    def client_account(handle: Any) -> str:
        """The SID of the account whose process opened the client end of ``handle``, or "?" when it cannot
        be read. Only for counting connections per user at once, before the client has written anything
        (a user holding silent connections must not take every slot); who the client is, for what it may
        do, is its token (``identify``), once its first line is read."""
        try:
            pid = win32pipe.GetNamedPipeClientProcessId(handle)
            process = win32api.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        except pywintypes.error:
            return "?"
        try:
            token = win32security.OpenProcessToken(process, win32security.TOKEN_QUERY)
        except pywintypes.error:
            return "?"
        finally:
            _close(process)
        try:
            return _token_user(token)[1]
        except pywintypes.error:
            return "?"
        finally:
            _close(token)

    def identify(handle: Any) -> Peer:
        """Who the client of ``handle`` is, from its token (call once its first message was read)."""
        try:
            win32security.ImpersonateNamedPipeClient(handle)
        except pywintypes.error as exc:
            raise _os_error(exc, "impersonating the client") from None
        try:
            token = win32security.OpenThreadToken(win32api.GetCurrentThread(), win32security.TOKEN_QUERY, True)
        except pywintypes.error as exc:
            raise _os_error(exc, "reading the client's token") from None
        finally:
            _revert()  # at once: nothing runs as the client
        try:
            return peer_of_token(token)
        except pywintypes.error as exc:
            raise _os_error(exc, "reading the client's token") from None
        finally:
            token.Close()

    def _revert() -> None:
        """Stop acting as the client. Should Windows fail to, this thread goes on as the client: Microsoft's
        RevertToSelf page says to end the process then, and the service manager starts the daemon again."""
        try:
            win32security.RevertToSelf()
        except pywintypes.error as exc:
            log.critical("local pipe: could not stop acting as a client (%s); the daemon ends", exc.strerror)
            os._exit(70)  # not an exception: any code still to run in this thread would run as the client

    def own_sid() -> str:
        token = win32security.OpenProcessToken(win32api.GetCurrentProcess(), win32security.TOKEN_QUERY)
        try:
            return _token_user(token)[1]
        finally:
            token.Close()

    def pipe_owner(handle: Any) -> str | None:
        """The SID of the pipe's owner; None when its security descriptor names none (Wine makes such a pipe
        when it is created without one; a hostile server may send anything)."""
        descriptor = win32security.GetSecurityInfo(handle, win32security.SE_KERNEL_OBJECT,
                                                   win32security.OWNER_SECURITY_INFORMATION)
        owner = descriptor.GetSecurityDescriptorOwner()
        return None if owner is None else str(win32security.ConvertSidToStringSid(owner))

    def pipe_sddl(handle: Any) -> str:
        """The pipe's owner and access list as SDDL (what the tests check the daemon set)."""
        info = win32security.OWNER_SECURITY_INFORMATION | win32security.DACL_SECURITY_INFORMATION
        descriptor = win32security.GetSecurityInfo(handle, win32security.SE_KERNEL_OBJECT, info)
        return str(win32security.ConvertSecurityDescriptorToStringSecurityDescriptor(
            descriptor, win32security.SDDL_REVISION_1, info))

    class PipeServer(Serving):
        """The named pipe, served like ``localsock.LocalServer``: one thread waits for clients on a free
        instance, each client gets a thread of its own (at most ``max_clients``); ``stop()`` wakes every
        thread and closes every instance."""

        def __init__(self, name: str, handler: RequestHandler, *, max_clients: int = MAX_CLIENTS,
                     max_clients_per_user: int = MAX_CLIENTS_PER_USER, read_timeout_s: float = READ_TIMEOUT_S,
                     write_timeout_s: float = WRITE_TIMEOUT_S, sddl: str | None = None) -> None:
            super().__init__(handler, max_clients=max_clients, max_clients_per_user=max_clients_per_user,
                             read_timeout_s=read_timeout_s, write_timeout_s=write_timeout_s)
            self.path = self.name = name
            self.max_instances = max_clients + 2  # the serving ones, one waiting, one being refused
            self.sddl = sddl
            self._security: Any = None
            self._owner: str | None = None  # what every instance must show: else it is one of another's pipe
            self._stop: Any = None
            self._thread: threading.Thread | None = None
            self._clients: set[threading.Thread] = set()
            self._lock = threading.Lock()

        def start(self) -> None:
            if self.sddl is None:  # owned by the daemon's own account (SYSTEM as a service), whatever the default
                self.sddl = f"O:{own_sid()}{PIPE_SDDL}"
            try:
                descriptor = win32security.ConvertStringSecurityDescriptorToSecurityDescriptor(
                    self.sddl, win32security.SDDL_REVISION_1)
            except pywintypes.error as exc:
                raise LocalSocketError(f"{self.name}: the pipe's access list: {exc.strerror}") from None
            self._security = win32security.SECURITY_ATTRIBUTES()
            self._security.SECURITY_DESCRIPTOR = descriptor
            self._security.bInheritHandle = False
            held = (f"{self.name}: another process already holds this pipe (not the daemon's: it could collect what "
                    "users send); not served")
            try:
                first = self._instance(first=True)
            except pywintypes.error as exc:
                if exc.winerror in (winerror.ERROR_ACCESS_DENIED, winerror.ERROR_PIPE_BUSY):
                    raise LocalSocketError(held) from None
                raise LocalSocketError(f"{self.name}: {exc.strerror}") from None
            # A pipe's owner and access list are those of its first instance, whatever a later one asks for:
            # an owner other than the one asked for means this is an instance of a pipe someone else made
            # (FILE_FLAG_FIRST_PIPE_INSTANCE refuses that on Windows; the check holds wherever it is not enforced).
            wanted = descriptor.GetSecurityDescriptorOwner()
            try:
                self._owner = pipe_owner(first)
            except pywintypes.error as exc:
                first.Close()
                raise LocalSocketError(f"{self.name}: its owner: {exc.strerror}") from None
            if wanted is not None and self._owner != str(win32security.ConvertSidToStringSid(wanted)):
                first.Close()
                raise LocalSocketError(f"{held} (owned by {self._owner})")
            self._stop = win32event.CreateEvent(None, True, False, None)
            self._thread = threading.Thread(target=self._accept_loop, args=(first,), name="agentroster-localsock",
                                            daemon=True)
            self._thread.start()

        def stop(self, timeout: float = 1.0) -> None:
            if self._thread is None:
                return
            win32event.SetEvent(self._stop)  # the accept loop and every client's wait wake up and end
            # one deadline for all: a client thread still in its handler is not waited for once more each
            deadline = time.monotonic() + timeout
            self._thread.join(timeout)
            with self._lock:
                clients = list(self._clients)
            for client in clients:
                client.join(max(0.0, deadline - time.monotonic()))
            if not self._thread.is_alive() and not any(client.is_alive() for client in clients):
                _close(self._stop)  # nothing waits on it any more (a thread still running keeps it)
            self._thread = None

        def _instance(self, *, first: bool = False) -> Any:
            open_mode = win32pipe.PIPE_ACCESS_DUPLEX | win32file.FILE_FLAG_OVERLAPPED
            if first:
                open_mode |= _FILE_FLAG_FIRST_PIPE_INSTANCE
            pipe_mode = (win32pipe.PIPE_TYPE_BYTE | win32pipe.PIPE_READMODE_BYTE | win32pipe.PIPE_WAIT
                         | _PIPE_REJECT_REMOTE_CLIENTS)
            return win32pipe.CreateNamedPipe(self.name, open_mode, pipe_mode, self.max_instances, BUFFER_BYTES,
                                             BUFFER_BYTES, 0, self._security)

        def _stopping(self) -> bool:
            return bool(win32event.WaitForSingleObject(self._stop, 0) == win32event.WAIT_OBJECT_0)

        def _accept_loop(self, handle: Any) -> None:
            event = win32event.CreateEvent(None, True, False, None)
            try:
                while handle is not None:
                    connected = self._connect(handle, event)
                    # The next instance is made before this one is handed on or closed. A pipe's name exists
                    # only while one of its instances does: were the daemon's last one closed first, anyone could
                    # create the name anew, with an access list of their own, and the daemon's next instance
                    # would be one of theirs.
                    following = self._next_instance()
                    if connected and following is not None:
                        self._dispatch(handle)
                    else:
                        _close(handle)
                    handle = following
            finally:
                event.Close()

        def _next_instance(self) -> Any:
            """A new instance of the daemon's pipe; None when stopping, or when the name is no longer the
            daemon's (logged). A failure (out of instances or handles) is retried, each time a little later, and
            logged once until an instance is made again, not at every retry."""
            delay = CONNECT_RETRY_S
            failing = ""
            while not self._stopping():
                try:
                    handle = self._instance()
                except pywintypes.error as exc:
                    if exc.strerror != failing:
                        log.warning("local pipe: a new instance: %s; retrying", exc.strerror)
                        failing = exc.strerror
                    win32event.WaitForSingleObject(self._stop, int(delay * 1000))
                    delay = min(delay * 2, INSTANCE_RETRY_MAX_S)
                    continue
                try:
                    owner: str | None = pipe_owner(handle)
                except pywintypes.error as exc:
                    owner = f"unknown ({exc.strerror})"
                if owner != self._owner:
                    _close(handle)
                    log.error("local pipe: %s is now owned by %s, not by the daemon: no longer served",
                              self.name, owner)
                    return None
                if failing:
                    log.warning("local pipe: a new instance was made again")
                return handle
            return None

        def _connect(self, handle: Any, event: Any) -> bool:
            """Wait for a client on ``handle``: True once one is connected, False when stopping or when
            the client left before it was served (the instance is then closed and made afresh)."""
            overlapped = pywintypes.OVERLAPPED()
            overlapped.hEvent = event
            try:
                result = win32pipe.ConnectNamedPipe(handle, overlapped)
            except pywintypes.error as exc:
                if exc.winerror != winerror.ERROR_NO_DATA:
                    log.warning("local pipe: waiting for a client: %s", exc.strerror)
                    win32event.WaitForSingleObject(self._stop, int(CONNECT_RETRY_S * 1000))
                return False
            if result == winerror.ERROR_PIPE_CONNECTED:
                return True
            ready = win32event.WaitForMultipleObjects([event, self._stop], False, win32event.INFINITE)
            if ready != win32event.WAIT_OBJECT_0:
                try:
                    win32file.CancelIo(handle)
                    # the OVERLAPPED must outlive the cancelled wait: Windows writes its result there when the
                    # cancel lands (CancelIoEx's page: not freed until the operation completed)
                    win32file.GetOverlappedResult(handle, overlapped, True)
                except pywintypes.error:
                    pass
                return False
            try:
                win32file.GetOverlappedResult(handle, overlapped, True)
            except pywintypes.error:
                return False
            return True

        def _dispatch(self, handle: Any) -> None:
            # out of handles: this client is dropped and the next accepted (were the error to end this
            # thread, the daemon would answer nobody again until restarted)
            try:
                conn = PipeConnection(handle, self._stop)
            except pywintypes.error as exc:
                log.warning("local pipe: a client: %s", exc.strerror)
                _close(handle)
                return
            # counted by the account of the client's process now, before it writes: silent connections of one
            # user cannot take every slot while the daemon waits for the line that tells their token
            account = client_account(handle)
            counted = Peer(account, superuser=account == SYSTEM_SID)
            busy = self.admission.user(counted)
            if not busy:
                busy = self.admission.slot()
                if busy:
                    self.admission.release_user(counted)
            if busy:
                self._refuse(conn, error("busy", busy + "; try again"))
                return
            thread = threading.Thread(target=self._serve, args=(conn, counted), name="agentroster-localsock-client",
                                      daemon=True)
            with self._lock:
                self._clients.add(thread)
            try:
                thread.start()
            except RuntimeError:  # no thread to be had: drop this client, keep accepting
                with self._lock:
                    self._clients.discard(thread)
                self.admission.release_user(counted)
                self.admission.release_slot()
                conn.close()

        def _refuse(self, conn: PipeConnection, doc: dict[str, Any]) -> None:
            try:
                conn.send(encode(doc), 0.2)  # the accept thread never waits long on a client
            except OSError:
                pass
            conn.close()

        def _serve(self, conn: PipeConnection, counted: Peer) -> None:
            try:
                self.serve(conn, lambda: identify(conn.handle))
            finally:
                conn.close()
                self.admission.release_user(counted)
                self.admission.release_slot()
                with self._lock:
                    self._clients.discard(threading.current_thread())

    def call_pipe(name: str, request: bytes, *, timeout_s: float) -> bytes:
        """Send ``request`` (one line) to the daemon's pipe and return what it answered, up to its first
        newline; ``DaemonNotListening`` when no daemon holds the pipe."""
        deadline = time.monotonic() + timeout_s
        flags = win32file.FILE_FLAG_OVERLAPPED | _SECURITY_SQOS_PRESENT | _SECURITY_IDENTIFICATION
        while True:
            try:
                handle = win32file.CreateFile(name, CLIENT_ACCESS, 0, None, win32file.OPEN_EXISTING, flags, None)
                break
            except pywintypes.error as exc:
                if exc.winerror in (winerror.ERROR_FILE_NOT_FOUND, winerror.ERROR_PATH_NOT_FOUND):
                    raise DaemonNotListening(f"{name}: no daemon is serving this pipe") from None
                if exc.winerror == winerror.ERROR_ACCESS_DENIED:
                    raise DaemonNotListening(f"{name}: the pipe refused this account (a network logon?)") from None
                if exc.winerror != winerror.ERROR_PIPE_BUSY:
                    raise _os_error(exc, name) from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{name}: every instance stayed busy")
            try:
                win32pipe.WaitNamedPipe(name, max(1, int(min(left, 2.0) * 1000)))
            except pywintypes.error:
                pass  # timed out, or the name vanished: the next CreateFile says which
        conn = PipeConnection(handle)
        try:
            try:
                problem = owner_problem(pipe_owner(handle), own_sid())
            except pywintypes.error as exc:
                raise _os_error(exc, f"{name}: its owner") from None
            if problem:
                raise OSError(f"{name}: {problem}")
            try:
                conn.send(request, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise
            except OSError as exc:  # closed before the request was taken: a refusal ("busy") may wait unread
                if not isinstance(exc, BrokenPipeError) and exc.errno not in _GONE:
                    raise
            data = bytearray()
            while True:
                chunk = conn.recv(1 << 16, max(0.0, deadline - time.monotonic()))
                if not chunk:
                    break
                data += chunk
                if len(data) > MAX_ANSWER_BYTES:
                    raise OSError(f"the daemon's answer is larger than {MAX_ANSWER_BYTES} bytes")
                if b"\n" in chunk:  # only the new chunk is searched: 32 MiB without one is not searched 500 times
                    break
            return bytes(data)
        finally:
            conn.close()
