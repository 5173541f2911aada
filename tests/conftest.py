"""Shared test set-up: tests/ on sys.path (for factories and support), process clean-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# After the repo root (pytest's pythonpath): tests/endpoint must not shadow the endpoint package.
sys.path.append(str(Path(__file__).parent))

# The org's fingerprint key for the suite (scans and daemons leave fingerprints out without one); the tests
# of a scan with no key, or with the key a collector hands out, take it out of their children's environment.
os.environ.setdefault("AGENTROSTER_FINGERPRINT_KEY", "FAKE-test-org-fingerprint-key")


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
