"""``agentroster companion``: the tray companion, started in the user's session at login. The packaged
endpoint is frozen without Qt: there the command runs the companion's own frozen folder the package
installs beside it (``companion/agentroster-companion``); without either it says what to install. This
module imports no Qt until it runs."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

INSTALL_HINT = ("agentroster companion needs Qt for Python (PySide6), which this install does not have; "
                "install it with pip install agentroster[console], or your OS's agentroster companion package")


def add_parser(sub: Any) -> None:
    companion = sub.add_parser("companion", help="the tray companion: tells you about your agents and IT's "
                                                 "messages, registers them, shows what is collected about you")
    companion.add_argument("--data-dir", metavar="DIR", help="the daemon's data dir (default: from its settings)")
    companion.add_argument("--quiet", action="store_true",
                           help="no desktop notifications (the tray icon and its windows stay)")
    companion.set_defaults(run=main)


COMPANION_NAME = "agentroster-companion"  # the frozen companion's executable (installers/)


def packaged_companion(executable: str, frozen: bool) -> Path | None:
    """The companion's frozen executable the package installed beside this frozen endpoint, or None (not
    frozen: a source install has PySide6 or needs it)."""
    if not frozen:
        return None
    name = COMPANION_NAME + (".exe" if os.name == "nt" else "")
    candidate = Path(executable).resolve().parent / "companion" / name
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def main(args: argparse.Namespace) -> int:
    try:
        from PySide6.QtWidgets import QApplication, QSystemTrayIcon
    except ImportError:
        packaged = packaged_companion(sys.executable, bool(getattr(sys, "frozen", False)))
        if packaged is None:
            print(INSTALL_HINT, file=sys.stderr)
            return 2
        argv = [str(packaged), *(["--data-dir", args.data_dir] if args.data_dir else []),
                *(["--quiet"] if args.quiet else [])]
        if os.name == "nt":  # no exec on Windows that keeps the console's wait: run it and pass its code on
            return subprocess.call(argv)
        os.execv(argv[0], argv)

    from endpoint.companion.app import Companion
    from endpoint.companion.model import Client
    from endpoint.service.localsock import socket_path
    from endpoint.service.managed import managed_source
    from endpoint.service.settings import SettingsError, load_settings

    try:
        settings, _ = load_settings({"data_dir": args.data_dir}, managed=managed_source())
    except SettingsError as exc:
        print(f"agentroster companion: {exc}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)  # closing a window leaves the tray icon
    companion = Companion(Client(socket_path(settings.data_dir)), quiet=args.quiet)
    companion.start()
    if not QSystemTrayIcon.isSystemTrayAvailable():  # no tray in this session: the window is the companion
        app.setQuitOnLastWindowClosed(True)
        companion.window.show_tab(0)
    return int(app.exec())
