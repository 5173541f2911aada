"""``agentroster console``: open the Qt console on a collector, or on an embedded one.

``agentroster`` imports this module at every start, so it imports only the standard library at module
level; Qt and httpx are imported when the console actually opens.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

TOKEN_ENV = "AGENTROSTER_TOKEN"


def add_parser(sub: Any) -> None:
    console = sub.add_parser(
        "console", help="open the Qt console (IT admins triage the fleet's agents)",
        description="Open the console on a collector (--server) or, with none given, on an embedded collector "
                    "on 127.0.0.1 over SQLite in your data dir. The token (admin or viewer) comes from "
                    f"${TOKEN_ENV}, the keyring or a 0600 file, or is asked for.")  # fmt: skip
    console.add_argument("--server", metavar="URL", help="the collector, e.g. https://collector.example.org:8443")
    console.add_argument("--insecure-http", action="store_true",
                         help="allow an http:// --server on another machine (the token then crosses the network "
                              "in clear)")
    console.add_argument("--forget-token", action="store_true", help="forget the stored token for --server first")
    console.add_argument("--data-dir", metavar="DIR", help="the embedded collector's data dir (default: per user)")
    console.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="agentroster console: %(message)s")
    if args.server:
        from console.loopback import plain_http_elsewhere

        if plain_http_elsewhere(args.server) and not args.insecure_http:
            # before Qt starts or any token is read: nothing is sent in clear by accident
            print(f"agentroster console: refusing {args.server}: plain HTTP to another machine would send the "
                  "token in clear. Use https://, or add --insecure-http.", file=sys.stderr)
            return 2
    try:
        from PySide6.QtWidgets import QApplication
    except ImportError as exc:
        print(f"agentroster console: Qt is not available ({exc}); install agentroster[console]", file=sys.stderr)
        return 1
    from pathlib import Path

    from console.app import embedded, theme, token_store
    from console.app.errors import EmbeddedCollectorFailed

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("agentroster")
    app.setApplicationName("console")
    if isinstance(app, QApplication):
        app.setWindowIcon(theme.window_icon())  # the sign-in dialog's too, and the task bar's
    sys.excepthook = _log_unexpected
    store = token_store.store()
    collector = None
    if args.server:
        server = args.server.rstrip("/")
        if args.forget_token:
            store.delete(server)
        signed = _sign_in(server, store, allow_insecure_http=args.insecure_http)
        if signed is None:
            return 1
        client = signed
    else:
        from console.app import api

        print("agentroster console: starting the embedded collector…", file=sys.stderr)
        try:
            collector = embedded.EmbeddedCollector(Path(args.data_dir) if args.data_dir else None, store).start()
        except EmbeddedCollectorFailed as exc:
            print(f"agentroster console: {exc}", file=sys.stderr)
            return 1
        client = api.Client(collector.url, collector.token)
    try:
        return _show(app, client)
    finally:
        client.close()
        if collector is not None:
            collector.stop()


def _sign_in(server: str, store: Any, *, allow_insecure_http: bool = False) -> Any:
    """A client with a token the collector accepts: from the environment, the store, or asked for; never
    over plain HTTP to another machine unless ``allow_insecure_http``."""
    from console.app import api
    from console.app.views.dialogs import SignInDialog
    from console.loopback import plain_http_elsewhere

    token = os.environ.get(TOKEN_ENV) or store.get(server)
    message = ""
    while True:
        client = None
        if token:
            try:
                client = api.Client(server, token, allow_insecure_http=allow_insecure_http)
            except api.InsecureTransport as exc:
                message = exc.message  # asked again, the token never sent
        if client is not None:
            try:
                client.role()
                return client
            except api.Unauthorized as exc:
                message = exc.message
                store.delete(server)
            except api.ApiError as exc:
                message = exc.message
            client.close()
        dialog = SignInDialog(server, message)
        if not dialog.exec():
            return None
        server = dialog.server.text().strip().rstrip("/") or server
        token = dialog.token.text().strip()
        if token and dialog.remember.isChecked() and (allow_insecure_http or not plain_http_elsewhere(server)):
            try:
                store.set(server, token)
            except OSError as exc:
                print(f"agentroster console: could not store the token ({exc.strerror})", file=sys.stderr)


def _show(app: Any, client: Any) -> int:
    import signal

    from PySide6.QtCore import QSettings, QTimer

    from console.app.controllers import Console
    from console.app.views.main_window import MainWindow

    window = MainWindow()
    console = Console(client, window, QSettings())
    console.start()
    window.show()
    app.aboutToQuit.connect(console.save_state)
    # Ctrl+C or a TERM closes the window like the close button does (and so stops an embedded collector):
    # Python runs signal handlers only between bytecodes, so a timer lets it in every 200 ms.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: app.quit())
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)
    ticker.start(200)
    code = int(app.exec())
    ticker.stop()
    console.shutdown()
    return code


def _log_unexpected(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    """An exception no handler caught: one log line and the console goes on (no traceback dialog)."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("console").error("unexpected error: %s: %s", kind.__name__, value, exc_info=(kind, value, tb))
