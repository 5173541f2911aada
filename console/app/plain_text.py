"""Showing text that came from an endpoint or an employee (agent and server names, users, hostnames,
owners, purposes, notes, error messages) as the literal text it is.

Qt guesses: a QLabel, a tooltip or a message box whose text "looks like" HTML (``Qt.mightBeRichText``)
is rendered as rich text, so a server named ``<img src="file:///…" width=4000>`` would load a local
file, stretch the window or show a fake "Approved" heading. Labels that show such text are plain
text; tooltips are always rich text in Qt, so their text is converted from plain text (escaped).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as GuiQt  # convertFromPlainText lives in QtGui
from PySide6.QtWidgets import QLabel, QWidget


def plain_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    """A label that shows its text literally, whatever it looks like."""
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    return label


def make_plain(*labels: QLabel) -> None:
    for label in labels:
        label.setTextFormat(Qt.TextFormat.PlainText)


def tooltip(text: str | None) -> str:
    """A tooltip showing ``text`` literally (line breaks kept); none for empty text."""
    if not text:
        return ""
    return GuiQt.convertFromPlainText(str(text), Qt.WhiteSpaceMode.WhiteSpaceNormal)
