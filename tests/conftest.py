"""Shared test set-up: tests/ on sys.path (for factories), output dirs, process clean-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
REPO = TESTS.parent
sys.path.append(str(TESTS))  # after the repo root: tests/endpoint must not shadow endpoint
AGENTROSTER = str(Path(sys.executable).with_name("agentroster"))


@pytest.fixture
def spawn() -> Iterator:
    """Start real child processes in their own process groups; all are killed at the end."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, **kw)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def run_agentroster(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([AGENTROSTER, *args], capture_output=True, text=True, timeout=timeout, **kw)
