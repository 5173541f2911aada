"""The two speed budgets: load() on a warm start, and matching a thousand ordinary processes.

Each figure is the best of a few runs of CPU time (the same as wall time on an idle machine), so that
other work on a busy machine does not fail the build by chance.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from process_mix import typical_processes

from signatures.matching import Library

LOAD_BUDGET_MS = 30.0
MATCH_BUDGET_MS = 10.0

_MEASURE_LOAD = (
    "import time, signatures\n"
    "t = time.process_time(); signatures.load(); print((time.process_time() - t) * 1000)\n"
)


def _load_ms(cache_dir: Path) -> float:
    env = {**os.environ, "AGENTROSTER_CACHE_DIR": str(cache_dir)}
    out = subprocess.run([sys.executable, "-c", _MEASURE_LOAD], env=env, capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2], timeout=60)
    return float(out.stdout.strip())


def test_load_warm_start_is_within_budget(tmp_path: Path) -> None:
    _load_ms(tmp_path)  # the first start parses the YAML and fills the cache
    best = min(_load_ms(tmp_path) for _ in range(3))
    print(f"load() warm start: {best:.1f} ms")
    assert best < LOAD_BUDGET_MS


def test_matching_a_thousand_processes_is_within_budget(lib: Library) -> None:
    processes = typical_processes(1000)
    runs = []
    for _ in range(7):
        start = time.process_time()
        for proc in processes:
            lib.match_process(proc)
        runs.append((time.process_time() - start) * 1000)
    print(f"match_process x1000: best {min(runs):.2f} ms")
    assert min(runs) < MATCH_BUDGET_MS
