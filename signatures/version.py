"""agentroster's version as the signatures package knows it (for the cache key), kept equal to
pyproject.toml's by a test: importlib.metadata would cost every scan some 25 ms to import."""

from __future__ import annotations

__version__ = "0.1.0"
