"""Signing in: a stored token is used as it is; a missing or refused one is asked for in a dialog (the
refusal said in it), and remembered when the admin asks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import console_support as support
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from console.app import cli, token_store
from console.app.views.dialogs import SignInDialog

pytestmark = pytest.mark.timeout(120)


def answer_dialogs(answers: list[str], seen: list[str]) -> None:
    """Fill each sign-in dialog that opens with the next token, noting the message it showed."""

    def fill() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, SignInDialog):
            QTimer.singleShot(20, fill)
            return
        seen.append(dialog.message.text())
        dialog.token.setText(answers.pop(0))
        dialog.accept()
        if answers:
            QTimer.singleShot(20, fill)

    QTimer.singleShot(20, fill)


def test_a_stored_token_signs_in_without_asking(qtbot: Any, tmp_path: Path, monkeypatch: Any,
                                                collector: support.RunningCollector) -> None:
    monkeypatch.delenv(cli.TOKEN_ENV, raising=False)
    store = token_store.FileStore(tmp_path / "credentials.json")
    store.set(collector.url, collector.viewer)
    client = cli._sign_in(collector.url, store)
    assert client is not None and client.role() == "viewer"
    client.close()


def test_a_refused_token_is_asked_for_again_and_the_good_one_kept(qtbot: Any, tmp_path: Path, monkeypatch: Any,
                                                                   collector: support.RunningCollector) -> None:
    monkeypatch.delenv(cli.TOKEN_ENV, raising=False)
    store = token_store.FileStore(tmp_path / "credentials.json")
    seen: list[str] = []
    answer_dialogs(["ara_0123456789abcdef.FAKEFAKEFAKE", collector.admin], seen)
    client = cli._sign_in(collector.url, store)
    assert client is not None and client.role() == "admin"
    client.close()
    assert seen[0] == "" and "does not know this token" in seen[1]
    assert store.get(collector.url) == collector.admin


def test_cancelling_the_dialog_gives_up(qtbot: Any, tmp_path: Path, monkeypatch: Any,
                                        collector: support.RunningCollector) -> None:
    monkeypatch.delenv(cli.TOKEN_ENV, raising=False)

    def cancel() -> None:
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, SignInDialog):
            dialog.reject()
        else:
            QTimer.singleShot(20, cancel)

    QTimer.singleShot(20, cancel)
    assert cli._sign_in(collector.url, token_store.FileStore(tmp_path / "c.json")) is None


def test_plain_http_to_another_machine_is_refused_in_the_dialog(qtbot: Any, tmp_path: Path, monkeypatch: Any,
                                                                collector: support.RunningCollector) -> None:
    """An http:// collector elsewhere: the token is never sent, the dialog says why; https or loopback signs in."""
    monkeypatch.setenv(cli.TOKEN_ENV, collector.admin)
    store = token_store.FileStore(tmp_path / "credentials.json")
    seen: list[str] = []

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, SignInDialog):
            QTimer.singleShot(20, answer)
            return
        seen.append(dialog.message.text())
        if len(seen) == 1:  # the admin types another plain-HTTP address: refused again
            dialog.server.setText("http://10.1.2.3:8443")
            dialog.token.setText(collector.admin)
            dialog.accept()
            QTimer.singleShot(20, answer)
        else:  # then the collector on this machine
            dialog.server.setText(collector.url)
            dialog.token.setText(collector.admin)
            dialog.accept()

    QTimer.singleShot(20, answer)
    client = cli._sign_in("http://collector.example.org:8443", store)
    assert client is not None and client.base_url == collector.url and client.role() == "admin"
    client.close()
    assert len(seen) == 2 and all("plain HTTP" in text and "--insecure-http" in text for text in seen)
    assert store.get("http://10.1.2.3:8443") is None  # a token for a plain-HTTP address is not kept


def test_the_client_refuses_plain_http_elsewhere_unless_allowed() -> None:
    from console.app import api

    with pytest.raises(api.InsecureTransport):
        api.Client("http://collector.example.org:8443", "ara_0123456789abcdef.FAKE")
    api.Client("http://127.0.0.1:9", "ara_0123456789abcdef.FAKE").close()
    api.Client("https://collector.example.org:8443", "ara_0123456789abcdef.FAKE").close()
    api.Client("http://collector.example.org:8443", "ara_0123456789abcdef.FAKE", allow_insecure_http=True).close()


def test_the_console_command_refuses_plain_http_elsewhere(tmp_path: Path) -> None:
    import subprocess
    import sys

    agentroster = str(Path(sys.executable).with_name("agentroster"))
    done = subprocess.run([agentroster, "console", "--server", "http://collector.example.org"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen",
                               cli.TOKEN_ENV: "ara_0123456789abcdef.FAKE"})
    assert done.returncode == 2, done.stderr
    assert "refusing http://collector.example.org" in done.stderr and "--insecure-http" in done.stderr
