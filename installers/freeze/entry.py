"""The frozen endpoint's entry point: the same ``agentroster`` command that pip installs."""

from __future__ import annotations

from endpoint.cli import main

raise SystemExit(main())
