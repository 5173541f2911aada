"""The companion in the employee's session (``agentroster companion``): a tray icon that tells the user,
once, about each new agent of theirs that is not registered and each message from IT, opens a small
registration window prefilled from what the daemon saw, and shows what agentroster holds about them.

It talks to the daemon only through its local socket, as the user (no sudo). ``model`` and ``client``
import no Qt; ``app`` is the Qt part, imported only when PySide6 is installed (the packaged endpoint
build has no Qt: ``agentroster companion`` there says what to install).
"""
