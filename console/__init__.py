"""agentroster's console: the collector server, governance and the Qt desktop app."""

from __future__ import annotations
