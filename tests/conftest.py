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


# -- installs that take minutes, started while the rest of the suite runs -------------------------------

BACKGROUND_INSTALLS = {"test_n8n_real.py": "n8n_install.py"}  # the test file -> its installer (tests/e2e)
_STARTED = pytest.StashKey["list[subprocess.Popen[bytes]]"]()


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect have dropped what will not run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that need a long first install run last, and their install starts now in the background
    (at a lower priority), so that it overlaps the rest of the suite instead of adding to it."""
    slow = [item for item in items if item.path.name in BACKGROUND_INSTALLS]
    if not slow or not hasattr(config, "cache"):
        return
    items[:] = [item for item in items if item.path.name not in BACKGROUND_INSTALLS] + slow
    module = getattr(slow[0], "module", None)
    installer = getattr(module, "n8n_install_module", None)
    cache = Path(config.cache.mkdir("agentroster-enterprise"))
    if installer is None or installer.missing() or installer.installed(cache):
        return  # the fixture skips saying why, or finds it installed
    log = (cache / "n8n-install.log").open("wb")
    script = slow[0].path.parent / BACKGROUND_INSTALLS[slow[0].path.name]
    process = subprocess.Popen(["nice", "-n", "10", sys.executable, str(script), str(cache)], stdin=subprocess.DEVNULL,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    config.stash[installer.BACKGROUND_INSTALL] = process  # the test's fixture waits for it
    config.stash.setdefault(_STARTED, []).append(process)


def pytest_unconfigure(config: pytest.Config) -> None:
    """A background install still running when the suite stops (the test deselected, -x) is stopped: the
    next run starts it again from a clean folder."""
    for process in config.stash.get(_STARTED, []):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
