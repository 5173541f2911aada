"""The dependency policy in pyproject.toml, and the lock that CI and the frozen builds install from:
a server install pulls no Qt, a laptop's console no psycopg, every 0.x library is capped below its next
minor release, and requirements/ci.lock pins (with hashes) a version of everything pyproject asks for."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCK = ROOT / "requirements" / "ci.lock"


def _requirements(extra: str | None = None) -> list[Requirement]:
    lines = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def _names(extra: str | None = None) -> set[str]:
    return {canonicalize_name(r.name) for r in _requirements(extra)}


def _locked() -> dict[str, tuple[Version, int]]:
    """Each locked package: its version and how many hashes it carries."""
    pins: dict[str, tuple[Version, int]] = {}
    name = ""
    for line in LOCK.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", line)
        if pin:
            name = canonicalize_name(pin.group(1))
            pins[name] = (Version(pin.group(2)), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


def test_the_server_pulls_no_qt_and_the_console_no_psycopg() -> None:
    assert not {n for n in _names("server") if n.startswith(("pyside6", "shiboken"))}
    assert "psycopg" not in _names("console")
    assert {"fastapi", "uvicorn", "sqlmodel", "alembic"} <= _names("server") & _names("console")


def test_all_is_every_other_extra() -> None:
    (everything,) = _requirements("all")
    assert everything.extras == set(PROJECT["optional-dependencies"]) - {"all"}


def test_every_0x_library_is_capped_below_its_next_minor() -> None:
    pins = _locked()
    uncapped = []
    for extra in [None, *PROJECT["optional-dependencies"]]:
        for req in _requirements(extra):
            name = canonicalize_name(req.name)
            if name == "agentroster" or name not in pins or pins[name][0].major != 0:
                continue
            version = pins[name][0]
            next_minor = Version(f"0.{version.minor + 1}") if version.minor else Version("0.1")
            if not any(s.operator == "<" and Version(s.version) <= next_minor for s in req.specifier):
                uncapped.append(str(req))
    assert not uncapped


def test_the_lock_pins_a_hashed_version_of_everything_pyproject_asks_for() -> None:
    pins = _locked()
    missing, outside, unhashed = [], [], []
    for extra in [None, *PROJECT["optional-dependencies"]]:
        for req in _requirements(extra):
            name = canonicalize_name(req.name)
            if name == "agentroster":
                continue
            if name not in pins:
                missing.append(str(req))
            elif not req.specifier.contains(pins[name][0], prereleases=True):
                outside.append(f"{req} (locked {pins[name][0]})")
    unhashed = [name for name, (_, hashes) in pins.items() if hashes == 0]
    assert not missing, f"not in {LOCK.name}; make the lock again: {missing}"
    assert not outside, f"locked outside pyproject's range; make the lock again: {outside}"
    assert not unhashed
