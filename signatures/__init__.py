"""agentroster's signatures: what each known agent, provider and credential looks like, and matching.

``load()`` returns the shipped packs as a ``Library`` (cached per process); ``check(paths)`` validates
pack files and runs their cases. The format is described in docs/signatures.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from signatures.errors import SignatureError
from signatures.launchers import ProcessFacts
from signatures.loader import load, load_files
from signatures.matching import Library, Match

if TYPE_CHECKING:
    from signatures.cases import PathFound

__all__ = ["Library", "Match", "ProcessFacts", "SignatureError", "check", "load", "load_files"]


def check(paths: Sequence[Path] | None = None, path_found: PathFound | None = None) -> list[str]:
    """Validate pack files (default: the shipped ones) and run their cases; [] when all is well. Path
    cases run only with ``path_found``: the file sensor's search, which the endpoint hands over."""
    from signatures.cases import check as run_check  # YAML and pydantic: only for checking packs

    return run_check(paths, path_found)
