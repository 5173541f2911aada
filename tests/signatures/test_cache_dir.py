"""Where the signatures cache lives when no AGENTROSTER_CACHE_DIR names it: the OS's per-user cache folder
(from platformdirs), and the system's for root on Linux, as before platformdirs took the ladder over."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from signatures import loader

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
NOBODY = 65534


def test_root_caches_in_var_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    if not IS_ROOT or sys.platform != "linux":
        pytest.skip("root on Linux only")
    monkeypatch.delenv("AGENTROSTER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/nowhere/else")
    assert loader.default_cache_dir() == Path("/var/cache/agentroster")


def _cache_dir_of_a_user(env: dict[str, str]) -> str:
    """default_cache_dir() in a child process acting as a user that is not root (nobody, when the tests
    run as root: everything it needs is imported first, since it may not read root's files)."""
    code = ("import os, platformdirs; from signatures import loader\n"
            f"if os.geteuid() == 0: os.setegid({NOBODY}); os.seteuid({NOBODY})\n"
            "print(loader.default_cache_dir())")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_user_caches_in_their_xdg_cache_home(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENTROSTER_CACHE_DIR", "XDG_CACHE_HOME")}
    env["HOME"] = str(tmp_path)
    assert _cache_dir_of_a_user(env) == str(tmp_path / ".cache" / "agentroster")
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    assert _cache_dir_of_a_user(env) == str(tmp_path / "xdg" / "agentroster")
