"""n8n from the npm registry, installed once into the end-to-end tests' cache (``install_cache``).

n8n-nodes-base declares ``xlsx`` as a tarball on cdn.sheetjs.com, which cannot be reached here (only the
npm registry can): a wrapper package.json overrides it with the registry's xlsx. Install scripts are
skipped (one reports analytics over the network, the others build optional native helpers) except
sqlite3's, which compiles n8n's SQLite driver from source with the system's Node headers (its prebuilt
binaries are on GitHub). The pinned n8n is the newest whose ``engines`` accept Node 20.

From an empty cache this takes minutes (6–7 on a busy two-core machine), so the suite starts it in the
background as soon as it has collected the test that needs it (tests/conftest.py) and runs that test
last; the test's fixture then finds it installed, or waits for the install under the cache's lock.

Run as a script (``python tests/e2e/n8n_install.py CACHE_FOLDER``) it installs and prints the figure;
exit 3 when this machine lacks what the install needs (the reason on stderr).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from install_cache import key, locked

N8N_VERSION = "2.8.4"
OVERRIDES = {"xlsx": "0.18.5"}  # n8n-nodes-base's xlsx is a cdn.sheetjs.com tarball: the registry's instead
NODE = shutil.which("node")
NPM = shutil.which("npm")
MISSING_EXIT = 3
#: the background install tests/conftest.py started, on the pytest config's stash (the fixture waits for it)
BACKGROUND_INSTALL = pytest.StashKey["subprocess.Popen[bytes]"]()


def target_in(cache: Path) -> Path:
    """Where the install lives in the cache, keyed by the version and the overrides."""
    return cache / f"n8n-{key((f'n8n@{N8N_VERSION}', json.dumps(OVERRIDES, sort_keys=True)))}"


def installed(cache: Path) -> bool:
    return (target_in(cache) / ".installed").exists()


def missing() -> str | None:
    """Why n8n cannot be installed and run on this machine, or None."""
    if NODE is None or NPM is None:
        return "needs Node.js and npm (./dev test installs Debian's nodejs and npm)"
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    if tuple(int(part) for part in version.lstrip("v").split(".")[:2]) < (20, 19):
        return f"n8n {N8N_VERSION} needs Node >= 20.19 (its engines), this machine's node is {version}"
    return None


def missing_to_build() -> str | None:
    """Why n8n's SQLite driver cannot be built here, or None."""
    for tool in ("make", "g++"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian's {tool}) to build n8n's sqlite3 driver from source"
    if not Path("/usr/include/node/node.h").exists():  # else node-gyp would fetch them from nodejs.org
        return "needs Node's headers in /usr/include/node (NodeSource's nodejs, Debian's libnode-dev)"
    return None


class InstallFailed(Exception):
    pass


def install(cache: Path) -> Path:
    """n8n installed in the cache (at once when it is there); InstallFailed with npm's last words."""
    target = target_in(cache)
    with locked(cache):
        if (target / ".installed").exists():
            return target
        shutil.rmtree(target, ignore_errors=True)  # a run stopped mid-install leaves a partial folder
        target.mkdir(parents=True)
        (target / "package.json").write_text(json.dumps({"name": "n8n-e2e", "private": True,
                                                         "dependencies": {"n8n": N8N_VERSION},
                                                         "overrides": OVERRIDES}))
        env = {**os.environ, "SCARF_ANALYTICS": "false", "npm_config_build_from_source": "true",
               "npm_config_nodedir": "/usr"}
        start = time.monotonic()
        _npm(target, env, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
        _npm(target, env, "rebuild", "sqlite3", "--loglevel=error")
        (target / ".installed").write_text(f"{time.monotonic() - start:.1f} s to install n8n@{N8N_VERSION} "
                                           f"(overrides {OVERRIDES})\n")
    return target


def _npm(folder: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run([NPM or "npm", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=1100)
    if done.returncode != 0:
        raise InstallFailed(f"npm {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def main(argv: list[str]) -> int:
    reason = missing() or missing_to_build()
    if reason:
        print(reason, file=sys.stderr)
        return MISSING_EXIT
    target = install(Path(argv[1]))
    print(f"n8n: {(target / '.installed').read_text().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
