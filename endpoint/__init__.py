"""agentroster's endpoint: sensors, parsers and the fingerprint engine that find agents on a machine."""

from __future__ import annotations
