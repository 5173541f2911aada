"""Speed of the signature library; prints figures, asserts nothing.

- ``load()`` on a warm start (the JSON cache filled by a first start), in a fresh interpreter, best of 5:
  budget 30 ms.
- ``Library.match_process`` over 1,000 ordinary, non-agent processes (``tests/signatures/process_mix.py``:
  Linux, macOS and Windows daemons, shells, editors, interpreters), best of 7: budget 10 ms.

``python bench/signature_library.py``. CPU time, not wall time, so a busy machine moves the figures less. The
fresh interpreters run with bytecode cached (a temporary PYTHONPYCACHEPREFIX, filled first), as an
installed package has it, whatever PYTHONDONTWRITEBYTECODE says in the caller's environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for extra in (REPO / "tests" / "signatures", REPO):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from process_mix import typical_processes  # noqa: E402

import signatures  # noqa: E402

LOAD_BUDGET_MS = 30.0
MATCH_BUDGET_MS = 10.0

_MEASURE_LOAD = (
    "import time\n"
    "t = time.process_time()\n"
    "import signatures\n"
    "signatures.load()\n"
    "print((time.process_time() - t) * 1000)\n"
)


def load_ms(cache_dir: str, pycache: str, code: str = _MEASURE_LOAD) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(AGENTROSTER_CACHE_DIR=cache_dir, PYTHONPYCACHEPREFIX=pycache)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=REPO, timeout=120)
    return float(out.stdout.strip() or 0)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="agentroster-bench-") as tmp:
        cache, pycache = os.path.join(tmp, "cache"), os.path.join(tmp, "pycache")
        load_ms("", pycache, "import signatures.cases")  # compiles every module a cold load imports
        cold = load_ms(cache, pycache)
        warm = min(load_ms(cache, pycache) for _ in range(5))
    print(f"import + load(), cold cache : {cold:7.1f} ms")
    print(f"import + load(), warm cache : {warm:7.1f} ms  (budget {LOAD_BUDGET_MS:.0f} ms: "
          f"{'within' if warm <= LOAD_BUDGET_MS else 'MISSED'})")

    lib = signatures.load()
    processes = typical_processes(1000)
    runs = []
    for _ in range(7):
        start = time.process_time()
        for proc in processes:
            lib.match_process(proc)
        runs.append((time.process_time() - start) * 1000)
    best = min(runs)
    print(f"match_process x1,000        : {best:7.2f} ms  (budget {MATCH_BUDGET_MS:.0f} ms: "
          f"{'within' if best <= MATCH_BUDGET_MS else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
