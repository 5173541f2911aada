"""A local user's client of the daemon's socket, for tests that run it as another uid: stdlib only, since
it runs with the system python3 as ``nobody`` (copied to a directory that user may read).

    python3 localsock_client.py SOCKET requests LINE...   # each LINE one request, on one connection
    python3 localsock_client.py SOCKET hold N             # open N connections; what the last one is told

Prints the answers as one JSON document.
"""

import json
import socket
import sys


def connect(path):
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(30)
    conn.connect(path)
    return conn


def answer(conn):
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data) if data else None


def main(path, mode, args):
    if mode == "requests":
        conn = connect(path)
        out = []
        for line in args:
            conn.sendall(line.encode() + b"\n")
            out.append(answer(conn))
        return out
    if mode == "hold":
        conns = [connect(path) for _ in range(int(args[0]))]
        return answer(conns[-1])
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3:])))
