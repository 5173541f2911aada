"""Signing in: a stored token is used as it is; a missing or refused one is asked for in a dialog (the
refusal said in it), and remembered when the admin asks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import console_support as support
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from console.app import cli, credentials
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
    store = credentials.FileStore(tmp_path / "credentials.json")
    store.set(collector.url, collector.viewer)
    client = cli._sign_in(collector.url, store)
    assert client is not None and client.role() == "viewer"
    client.close()


def test_a_refused_token_is_asked_for_again_and_the_good_one_kept(qtbot: Any, tmp_path: Path, monkeypatch: Any,
                                                                   collector: support.RunningCollector) -> None:
    monkeypatch.delenv(cli.TOKEN_ENV, raising=False)
    store = credentials.FileStore(tmp_path / "credentials.json")
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
    assert cli._sign_in(collector.url, credentials.FileStore(tmp_path / "c.json")) is None
