"""Dify: its api and worker processes, named as Dify from the api folder they run in.

Dify's backend is one Python project (its ``api`` folder, ``/app/api`` in the ``langgenius/dify-api``
image) run two ways: the api as ``gunicorn … app:app`` and the worker as ``celery -A app.celery worker``
(also ``beat``). Both commands are common to many Flask projects; what says Dify is the folder's
``pyproject.toml``, whose project is named ``dify-api`` (its version is read from it too).

Dify keeps its apps (and which of them run in agent mode) in PostgreSQL, whose data directory
(``volumes/db/data`` beside its compose file) is a database server's files, not something a scanner can
query without that server: the apps are not listed, and the sighting says so instead of guessing.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from endpoint.scan.projects import MANIFEST_BYTES, Found

if TYPE_CHECKING:
    from endpoint.scan.evidence import ProcessRecord
    from endpoint.scan.projects import Reads

#: the Flask app module Dify's api and worker name on their command lines
APP_MODULES = frozenset({"app", "app.celery"})
_NAME = re.compile(r"""^name\s*=\s*["']dify-api["']\s*$""", re.M)
_VERSION = re.compile(r"""^version\s*=\s*["']([\w.+-]{1,40})["']\s*$""", re.M)


def resolve(record: ProcessRecord, cwd: str, reads: Reads) -> Found | None:
    """Dify's api or worker (its folder, what it runs, the version its pyproject names), or None when the
    process is not one: a ``gunicorn app:app`` or ``celery -A app.celery`` of a folder whose pyproject.toml
    names no ``dify-api`` is some other project's."""
    from endpoint.scan.projects.python import parse

    command = parse(record.cmdline, cwd)
    if command is None or not command.modules or command.modules[0] not in APP_MODULES:
        return None
    role = "worker" if command.modules[0] == "app.celery" else "api"
    for folder in dict.fromkeys(command.dirs[:4]):
        if not folder or not os.path.isabs(folder):
            continue
        text = reads.text(os.path.join(folder, "pyproject.toml"), folder, limit=MANIFEST_BYTES, code=False)
        if text is None or _NAME.search(text) is None:
            continue
        version = _VERSION.search(text)
        packages = [("pypi", "dify-api", version.group(1), "pyproject.toml")] if version else []
        return Found(os.path.normpath(folder), f"Dify {role} ({command.entry})", [], packages)
    return None
