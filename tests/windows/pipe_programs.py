"""Programs the Windows Python runs for tests/windows/test_pipe_windows.py: the daemon's pipe server, and
its clients (the endpoint's own ``localsock.call``, and raw ones a hostile user could write).

``python pipe_programs.py server OPTIONS_JSON`` serves until the file ``stop`` names exists, printing
``listening PID``, or ``refused MESSAGE`` when the pipe cannot be served, then ``stopped SECONDS SERVED BUSY``.
``python pipe_programs.py client OPTIONS_JSON`` does one thing and prints one JSON line.
``python pipe_programs.py hostile OPTIONS_JSON`` is a server a client must not trust to behave: it makes the
pipe itself (owned by this account, which its clients trust, or with no owner at all: ``"owner": false``),
prints ``listening``, and answers its first client with 33 MiB and no newline (``flood``) or one byte every
0.2 s (``trickle``), or reads what it sends and prints ``read N bytes`` (``collect``).
Nothing here reaches the network: only the named pipe of the test.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any


def server(opts: dict[str, Any]) -> int:
    from endpoint.service import _pipe_windows as pipe
    from endpoint.service.localproto import LocalSocketError, Peer

    class Echo:
        """Answers each line with what it was and who sent it; "crash" is a bug, "slow" takes 0.5 s,
            "stuck" 5 s."""

        def answer(self, line: bytes, peer: Peer) -> dict[str, Any]:
            if line == b"crash":
                raise RuntimeError("FAKE-bug-in-one-request")
            if line == b"slow":
                time.sleep(0.5)
            if line == b"stuck":  # a handler that takes long (a slow collector): marked as started, then 5 s
                Path(opts["marks"], f"{threading.get_ident()}").touch()
                time.sleep(5)
            return {"ok": True, "line": line.decode("utf-8", "replace"), "pid": os.getpid(),
                    "peer": [peer.key, peer.superuser, peer.name]}

    if opts.get("handler") == "real":
        from endpoint.service.registration.socket_handler import Handler

        handler: Any = Handler(Path(opts["data_dir"]))
    else:
        handler = Echo()
    served = pipe.PipeServer(opts["name"], handler, max_clients=opts.get("max_clients", 8),
                             max_clients_per_user=opts.get("max_clients_per_user", 4),
                             read_timeout_s=opts.get("read_timeout_s", 5.0), sddl=opts.get("sddl"))
    try:
        served.start()
    except LocalSocketError as exc:
        print("refused", exc, flush=True)
        return 3
    print("listening", os.getpid(), flush=True)
    while not os.path.exists(opts["stop"]):
        time.sleep(0.05)
    started = time.monotonic()
    served.stop()
    print("stopped", round(time.monotonic() - started, 2), served.served, served.refused_busy, flush=True)
    return 0


def hostile(opts: dict[str, Any]) -> int:
    import pywintypes
    import win32file
    import win32pipe
    import win32security

    from endpoint.service import _pipe_windows as pipe

    security = None  # Wine then gives the pipe no owner at all
    if opts.get("owner", True):
        security = win32security.SECURITY_ATTRIBUTES()
        security.SECURITY_DESCRIPTOR = win32security.ConvertStringSecurityDescriptorToSecurityDescriptor(
            f"O:{pipe.own_sid()}D:(A;;GA;;;WD)", win32security.SDDL_REVISION_1)
    handle = win32pipe.CreateNamedPipe(opts["name"], win32pipe.PIPE_ACCESS_DUPLEX, win32pipe.PIPE_TYPE_BYTE
                                       | win32pipe.PIPE_READMODE_BYTE | win32pipe.PIPE_WAIT, 1, 1 << 16, 1 << 16,
                                       0, security)
    print("listening", os.getpid(), flush=True)
    win32pipe.ConnectNamedPipe(handle, None)
    try:
        if opts["mode"] == "collect":
            got = 0
            while True:
                got += len(win32file.ReadFile(handle, 1 << 16)[1])
        elif opts["mode"] == "flood":
            block = b"x" * (1 << 20)
            for _ in range(33):
                win32file.WriteFile(handle, block)
        else:
            for _ in range(300):
                win32file.WriteFile(handle, b"{")
                time.sleep(0.2)
    except pywintypes.error as exc:  # the client left or gave up: what the test wants
        if opts["mode"] == "collect":
            print("read", got, "bytes", flush=True)
        print("client left", exc.winerror, flush=True)
    handle.Close()
    return 0


def client(opts: dict[str, Any]) -> dict[str, Any]:
    from endpoint.service import _pipe_windows as pipe
    from endpoint.service import localsock

    name = opts["name"]
    mode = opts["mode"]
    if mode == "call":  # the endpoint's own client, as `agentroster register` and the companion use it
        try:
            return {"answer": localsock.call(name, opts["request"], timeout_s=opts.get("timeout_s", 20.0))}
        except Exception as exc:  # the test reads which error, and its words
            return {"error": type(exc).__name__, "message": str(exc)}
    if mode == "churn":  # clients come and go; between them, is the name ever missing (no instance at all)?
        import pywintypes
        import win32file
        import win32pipe

        missing = probes = 0
        for _ in range(opts["times"]):
            try:
                win32file.CreateFile(name, pipe.CLIENT_ACCESS, 0, None, win32file.OPEN_EXISTING, 0, None).Close()
            except pywintypes.error as exc:
                missing += exc.winerror == 2  # ERROR_FILE_NOT_FOUND; ERROR_PIPE_BUSY is fine
            for _ in range(20):
                probes += 1
                try:
                    win32pipe.WaitNamedPipe(name, 1)
                except pywintypes.error as exc:
                    missing += exc.winerror == 2
        return {"missing": missing, "probes": probes}
    if mode == "whoami":  # this process's account, found another way than the server's
        import win32api
        import win32security

        token = win32security.OpenProcessToken(win32api.GetCurrentProcess(), win32security.TOKEN_QUERY)
        sid = win32security.GetTokenInformation(token, win32security.TokenUser)[0]
        name_, domain, _ = win32security.LookupAccountSid(None, sid)
        linked = win32security.GetTokenInformation(token, win32security.TokenElevation)
        return {"sid": win32security.ConvertSidToStringSid(sid), "account": f"{domain}\\{name_}",
                "elevated": bool(linked), "own_sid": pipe.own_sid()}
    import pywintypes
    import win32file
    import win32pipe

    def connect() -> Any:
        for _ in range(100):  # the server makes its next instance once it took the last client: wait for it
            try:
                return win32file.CreateFile(name, pipe.CLIENT_ACCESS, 0, None, win32file.OPEN_EXISTING,
                                            win32file.FILE_FLAG_OVERLAPPED, None)
            except pywintypes.error as exc:
                if exc.winerror != 231:  # ERROR_PIPE_BUSY
                    raise
                try:
                    win32pipe.WaitNamedPipe(name, 2000)
                except pywintypes.error:
                    pass
        raise SystemExit("every instance stayed busy")

    handles = [connect() for _ in range(opts.get("connections", 1))]
    conns = [pipe.PipeConnection(h) for h in handles]
    if mode == "sddl":
        return {"sddl": pipe.pipe_sddl(handles[0]), "owner": pipe.pipe_owner(handles[0])}
    if mode == "raw":  # send these bytes (maybe never a newline), then read what comes until the server closes
        out: dict[str, Any] = {}
        text = opts["send"] * opts.get("times", 1)  # a long line is made here: a command line is at most 32 KiB
        conns[0].send(text.encode("latin-1"), 10.0)
        data = b""
        started = time.monotonic()
        try:
            while chunk := conns[0].recv(1 << 16, opts.get("wait_s", 10.0)):
                data += chunk
        except (TimeoutError, OSError, pywintypes.error) as exc:
            out["ended"] = type(exc).__name__
        out["answers"] = [json.loads(line) for line in data.splitlines()]
        out["seconds"] = round(time.monotonic() - started, 2)
        return out
    if mode == "hold":  # keep the connections open and silent until the file `release` names exists
        print(json.dumps({"holding": len(handles)}), flush=True)
        while not os.path.exists(opts["release"]):
            time.sleep(0.05)
        return {"released": True}
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    options = json.loads(sys.argv[2])
    if sys.argv[1] == "server":
        sys.exit(server(options))
    if sys.argv[1] == "hostile":
        sys.exit(hostile(options))
    print(json.dumps(client(options)), flush=True)
