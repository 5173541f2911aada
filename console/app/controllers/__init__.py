"""The console's controllers: they wire the views' signals to the API (through the worker, off the GUI
thread) and the API's answers back to the models and views. ``Console`` makes one of each per window."""

from __future__ import annotations

from console.app.controllers.main_window import Console

__all__ = ["Console"]
