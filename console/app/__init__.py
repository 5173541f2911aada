"""The console: a PySide6 desktop app over the collector API (``agentroster console``)."""
