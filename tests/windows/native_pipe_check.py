"""The daemon's named pipe on a real Windows machine: what Wine cannot show (.github/workflows/windows.yml runs
this with the Windows venv's Python; tests/windows/test_pipe_windows.py runs it under Wine with ``--wine``).

It serves a pipe with a test handler, calls it with the endpoint's own client, reads back the pipe's owner
and access list, and tries to serve the same name a second time, which Windows must refuse
(``FILE_FLAG_FIRST_PIPE_INSTANCE``: a name someone else holds is never served; Wine 8 does not enforce it,
hence ``--wine``). Prints one JSON line of what it found; exits 1 when a check fails.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any


def main(argv: list[str]) -> int:
    from endpoint.service import _pipe_windows as pipe
    from endpoint.service import localsock
    from endpoint.service.localproto import LocalSocketError, Peer

    class Echo:
        def answer(self, line: bytes, peer: Peer) -> dict[str, Any]:
            return {"ok": True, "line": line.decode(), "peer": [peer.key, peer.superuser, peer.name]}

    name = rf"\\.\pipe\agentroster-check-{uuid.uuid4().hex}"
    first = pipe.PipeServer(name, Echo())
    first.start()
    found: dict[str, Any] = {"name": name}
    failures: list[str] = []
    try:
        answer = localsock.call(name, {"op": "list"}, timeout_s=20.0)
        found["peer"] = answer.get("peer")
        if answer.get("line") != '{"op":"list"}' or answer["peer"][0] != pipe.own_sid():
            failures.append(f"the round trip: {answer}")
        second = pipe.PipeServer(name, Echo())
        try:
            second.start()
        except LocalSocketError as exc:
            found["second_server"] = f"refused: {exc}"
        else:
            second.stop()
            found["second_server"] = "served"
            if "--wine" not in argv:
                failures.append("a second server was allowed on a name the first holds")
    finally:
        first.stop()
    found["failures"] = failures
    print(json.dumps(found), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
