"""The frozen companion's entry point: ``agentroster-companion``, the tray companion started at login.

It is ``agentroster companion`` (``endpoint.companion.cli``) in a folder of its own, with Qt, so that the
endpoint's folder stays without Qt. Two options exist only here, for the package's checks and for
whoever looks at a deployed machine: ``--version``, and ``--self-check``, which starts the application
offscreen (no display needed), makes its tray icon and windows without asking the daemon anything, and
exits 0, or 1 saying what is missing from the folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def _version() -> str:
    import contract

    return contract.__version__


def self_check() -> int:
    """Start the companion's Qt application offscreen, make what it shows, quit: 0 when it all works."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a check, not a session: never a real display
    try:
        from PySide6 import __version__ as pyside_version
        from PySide6.QtCore import QTimer, qVersion
        from PySide6.QtWidgets import QApplication

        from endpoint.companion.app import Companion
        from endpoint.companion.model import Client, SeenStore
    except ImportError as exc:
        print(f"agentroster-companion self-check: this folder misses {exc.name or exc}: freeze it again "
              "(python -m installers freeze)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="agentroster-companion-check-") as tmp:
        app = QApplication.instance() or QApplication(sys.argv[:1])
        assert isinstance(app, QApplication)
        # a socket that does not exist and a state file of its own: the check asks and remembers nothing
        companion = Companion(Client(Path(tmp) / "no-daemon.sock"), seen=SeenStore(Path(tmp) / "seen.json"),
                              quiet=True)
        missing: list[str] = []

        def look() -> None:  # once the event loop runs: the window has been laid out and shown
            missing.extend(name for name, ok in (("tray icon", not companion.tray.icon().isNull()),
                                                 ("status window", companion.window.isVisible()),
                                                 ("provider list", bool(companion.provider_ids))) if not ok)
            app.quit()  # Qt closes every window as it quits

        companion.window.show_tab(0)
        QTimer.singleShot(0, look)
        app.exec()
        platform = app.platformName()
    if missing or platform != "offscreen":
        print(f"agentroster-companion self-check: failed ({', '.join(missing) or 'platform ' + platform}): "
              "freeze it again (python -m installers freeze)", file=sys.stderr)
        return 1
    print(f"agentroster-companion {_version()} self-check: ok (Qt {qVersion()}, PySide6 {pyside_version}, "
          f"platform {platform})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentroster-companion", description=(
        "the agentroster companion: tells you about your AI agents and IT's messages, registers them, "
        "shows what agentroster collects about you"))
    parser.add_argument("--version", action="version", version=f"agentroster-companion {_version()}")
    parser.add_argument("--self-check", action="store_true",
                        help="start offscreen, make the tray icon and windows, exit 0 (1: the folder is incomplete)")
    parser.add_argument("--data-dir", metavar="DIR", help="the daemon's data dir (default: from its settings)")
    parser.add_argument("--quiet", action="store_true",
                        help="no desktop notifications (the tray icon and its windows stay)")
    args = parser.parse_args(argv)
    if args.self_check:
        return self_check()
    from endpoint.companion.cli import main as run

    return run(args)


raise SystemExit(main())
