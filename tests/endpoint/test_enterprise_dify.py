"""Dify found as its processes and by its data folder.

Dify's api and worker are real processes here, started with the command lines its image's entrypoint
uses (``gunicorn … app:app``, ``celery -A app.celery worker …``) from an api folder laid out as Dify's
(its ``pyproject.toml`` naming ``dify-api``); the programs are small Python scripts named gunicorn and
celery that sleep, since Dify itself needs PostgreSQL, Redis and a few hundred packages. Its data folder
is a compose folder's ``volumes/`` as Dify's ``docker-compose.yaml`` mounts them, found by the real file
scan of a home.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import signatures
from endpoint.scan.engine import Engine
from endpoint.scan.evidence import ArtifactRecord, ProcessRecord
from endpoint.scan.homes import find_homes
from endpoint.scan.projects import ProjectReader, interests_of
from endpoint.scan.sensors.files import FileScan

LIB = signatures.load()
PYPROJECT = '[project]\nname = "dify-api"\nversion = "1.9.1"\nrequires-python = ">=3.11,<3.13"\n'
GUNICORN = ["--bind", "0.0.0.0:5001", "--workers", "1", "--worker-class", "gevent", "--timeout", "200", "app:app"]
CELERY = ["-A", "app.celery", "worker", "-P", "gevent", "-c", "1", "--loglevel", "INFO", "-Q", "dataset,mail"]


def _api_folder(folder: Path, pyproject: str = PYPROJECT) -> Path:
    """An api folder as Dify's: its pyproject, app.py, and a venv whose gunicorn and celery are scripts."""
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(pyproject)
    (folder / "app.py").write_text("from app_factory import create_app\napp = create_app()\n")
    for name in ("gunicorn", "celery"):
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
        script.chmod(0o755)
    return folder


def _started(spawn: Any, folder: Path, program: str, args: list[str], error: str | None = None) -> ProcessRecord:
    """A real process run as Dify's entrypoint runs it, read by the process sensor with its project."""
    from endpoint.scan.sensors.processes import iter_processes, read_details

    proc = spawn([sys.executable, str(folder / ".venv" / "bin" / program), *args], cwd=folder)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = [r for r in iter_processes(LIB.credential_kind, pids=[proc.pid], read_env=True)
                   if isinstance(r, ProcessRecord)]
        if records and records[0].cmdline[-1:] == args[-1:]:
            break
        time.sleep(0.05)
    [record] = records
    problem = read_details(record, LIB.credential_kind, projects=ProjectReader(interests_of(LIB), maps=False))
    assert (problem.error if problem else None) == error, problem
    return record


def test_difys_api_and_worker_are_found_as_dify_named_after_its_api_folder(tmp_path: Path, spawn: Any) -> None:
    folder = _api_folder(tmp_path / "dify" / "api")
    api = _started(spawn, folder, "gunicorn", GUNICORN)
    worker = _started(spawn, folder, "celery", CELERY)
    assert api.project is not None and api.project.platform == "dify"
    assert (api.project.root, api.project.entry) == (str(folder), "Dify api (app:app)")
    assert worker.project is not None and worker.project.entry == "Dify worker (app.celery)"
    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_processes([api, worker])
    found = {s["name"]: s for s in engine.result("2026-01-01T00:00:00+00:00")}
    sighting = found[f"Dify api (app:app) in {folder}"]
    assert sighting["signature"] == "dify" and sighting["type"] == "enterprise"
    assert sighting["project"]["version"] == "1.9.1" and sighting["project"]["workflows"] == []
    details = [e["detail"] for e in sighting["evidence"]]
    assert f"pid {api.pid}: Dify 1.9.1 api folder {folder} (its pyproject.toml names dify-api); its apps are in " \
           "PostgreSQL and not read" in details
    assert found[f"Dify worker (app.celery) in {folder}"]["signature"] == "dify"


def test_the_same_commands_in_another_projects_folder_are_not_dify(tmp_path: Path, spawn: Any) -> None:
    folder = _api_folder(tmp_path / "invoices" / "api", '[project]\nname = "invoice-api"\n')
    api = _started(spawn, folder, "gunicorn", GUNICORN)
    assert api.project is None or api.project.platform != "dify"
    # a pyproject that is not its user's or root's is not believed either
    other = _api_folder(tmp_path / "planted" / "api")
    if os.geteuid() != 0:
        pytest.skip("needs root to give the pyproject to another user")
    os.chown(other / "pyproject.toml", 4242, 4242)
    planted = _started(spawn, other, "gunicorn", GUNICORN, error="not_owner")
    assert planted.project is None or planted.project.platform != "dify"


def test_difys_data_folder_is_found_in_a_home_and_a_lone_database_volume_is_not(tmp_path: Path) -> None:
    home = tmp_path / "home" / "alice"
    compose = home / "dify" / "docker"
    (compose / "volumes" / "app" / "storage").mkdir(parents=True)
    (compose / "volumes" / "db" / "data").mkdir(parents=True)
    (compose / "docker-compose.yaml").write_text("services:\n  api:\n    image: langgenius/dify-api:1.9.1\n")
    other = home / "shop" / "volumes" / "db" / "data"  # another compose project's database volume
    other.mkdir(parents=True)
    (other / "PG_VERSION").write_text("15\n")
    found = [r for r in FileScan(LIB, str(tmp_path)).run(find_homes(str(tmp_path)))
             if isinstance(r, ArtifactRecord) and r.signature == "dify"]
    assert [r.path for r in found] == [str(compose / "volumes" / "app" / "storage")]
    engine = Engine(LIB, device_id="dev", platform="linux")
    engine.add_artifacts(found)
    [sighting] = engine.result("2026-01-01T00:00:00+00:00")
    assert sighting["signature"] == "dify"
