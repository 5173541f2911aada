"""Every colour and icon the console shows, in one place.

Colours come from the application's palette (its roles: text, base, mid, highlight, tool tip…) and from
a few tones of meaning (governed, ungoverned, warning, muted), each with a variant for a light and for a
dark palette, chosen by how light the palette's window is. Nothing else in ``console.app`` names a
colour: a widget asks for a tone (``tone_label``, ``colour``, ``css``), so the console stays readable
whichever palette the desktop, or the View menu's theme choice, gives it.

Icons are Qt's own standard icons, and the window icon is drawn here: no image files to ship.
"""

from __future__ import annotations

from typing import Literal

import shiboken6
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPainterPath, QPalette, QPixmap
from PySide6.QtWidgets import QApplication, QStyle, QWidget

Tone = Literal["good", "bad", "warn", "muted", "accent", "grid", "text", "banner", "banner_border",
               "banner_text", "revoked"]
Theme = Literal["system", "light", "dark"]
THEMES: tuple[Theme, ...] = ("system", "light", "dark")

# (on a light palette, on a dark palette): each pair reads on its own background at WCAG AA or better
_TONES: dict[str, tuple[str, str]] = {
    "good": ("#1e7b34", "#6fcf87"),
    "bad": ("#b3261e", "#ff8a80"),
    "warn": ("#8a6d00", "#f2c94c"),
    "revoked": ("#6b6b6b", "#a0a0a0"),
    "banner": ("#fff4ce", "#4a3d0a"),
    "banner_border": ("#e0c060", "#8a7320"),
    "banner_text": ("#3a2e00", "#fff4ce"),
}
_TONE_PROPERTY = "agentrosterTone"


def _palette(palette: QPalette | None = None) -> QPalette:
    if palette is not None:
        return palette
    app = QApplication.instance()
    return app.palette() if isinstance(app, QApplication) else QPalette()


def is_dark(palette: QPalette | None = None) -> bool:
    """True when the palette's windows are dark (light text on them)."""
    return _palette(palette).color(QPalette.ColorRole.Window).lightness() < 128


def colour(tone: Tone, palette: QPalette | None = None) -> QColor:
    """The colour for ``tone`` under ``palette`` (the application's when None)."""
    chosen = _palette(palette)
    if tone == "text":
        return chosen.color(QPalette.ColorRole.Text)
    if tone == "muted":
        return chosen.color(QPalette.ColorRole.PlaceholderText)
    if tone == "grid":
        return chosen.color(QPalette.ColorRole.Mid)
    if tone == "accent":
        return chosen.color(QPalette.ColorRole.Highlight)
    light, dark = _TONES[tone]
    return QColor(dark if is_dark(chosen) else light)


def css(tone: Tone, palette: QPalette | None = None) -> str:
    """``colour`` as ``#rrggbb``, for rich text and style sheets."""
    return colour(tone, palette).name()


def tone_label(widget: QWidget, tone: Tone | None) -> None:
    """Colour a widget's text with ``tone`` (None: the palette's own), and again whenever the palette changes."""
    widget.setProperty(_TONE_PROPERTY, tone or "")
    _apply_tone(widget)


def _apply_tone(widget: QWidget) -> None:
    tone = widget.property(_TONE_PROPERTY)
    widget.setStyleSheet(f"color: {css(tone)}" if tone else "")


def banner_style(name: str) -> str:
    return (f"#{name} {{ background: {css('banner')}; border: 1px solid {css('banner_border')}; }}"
            f" #{name} QLabel {{ color: {css('banner_text')}; }}")


def light_palette() -> QPalette:
    """A light palette: Fusion's own standard one."""
    style = QApplication.style()
    return QPalette(style.standardPalette()) if style is not None else QPalette()


def dark_palette() -> QPalette:
    """A dark palette for every role the console uses (and the disabled state)."""
    p = QPalette()
    roles = QPalette.ColorRole
    # Window darker than Base: Fusion outlines check boxes and frames with the window colour darkened, which
    # must stand out on the base of a list (an unticked box in a table would vanish otherwise)
    for role, value in ((roles.Window, "#25252a"), (roles.WindowText, "#e8e8ea"), (roles.Base, "#303036"),
                        (roles.AlternateBase, "#38383f"), (roles.ToolTipBase, "#3a3a3f"), (roles.ToolTipText, "#f0f0f0"),
                        (roles.PlaceholderText, "#9a9aa2"), (roles.Text, "#e8e8ea"), (roles.Button, "#35353a"),
                        (roles.ButtonText, "#e8e8ea"), (roles.BrightText, "#ff6e6e"), (roles.Light, "#4a4a50"),
                        (roles.Midlight, "#3e3e44"), (roles.Mid, "#55555c"), (roles.Dark, "#18181b"),
                        (roles.Shadow, "#000000"), (roles.Highlight, "#3d7bd6"), (roles.HighlightedText, "#ffffff"),
                        (roles.Link, "#8ab4f8"), (roles.LinkVisited, "#c58af9")):  # fmt: skip
        p.setColor(role, QColor(value))
    disabled = QPalette.ColorGroup.Disabled
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        p.setColor(disabled, role, QColor("#7a7a80"))
    return p


class _PaletteWatcher(QObject):
    """Re-applies the tones of toned widgets when the application's palette changes."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if watched is QApplication.instance() and event.type() == QEvent.Type.ApplicationPaletteChange:
            restylable = []
            for widget in QApplication.allWidgets():
                if widget.property(_TONE_PROPERTY):
                    _apply_tone(widget)
                if callable(getattr(widget, "restyle", None)):  # colours in rich text or a style sheet
                    restylable.append(widget)
            # after the tones: a restyle may rebuild what it shows and delete widgets of the list above
            for widget in restylable:
                if shiboken6.isValid(widget):
                    widget.restyle()  # type: ignore[attr-defined]
        return False


_watcher: _PaletteWatcher | None = None


def watch() -> None:
    """Keep toned widgets in step whenever the application's palette changes (the desktop's theme too)."""
    global _watcher
    app = QApplication.instance()
    if isinstance(app, QApplication) and _watcher is None:
        _watcher = _PaletteWatcher(app)
        app.installEventFilter(_watcher)


def apply(theme: Theme = "system") -> None:
    """Use the Fusion style with a light or dark palette (``system``: the platform's palette), and keep
    toned widgets in step when the palette changes."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    watch()
    if theme == "system":
        app.setPalette(QPalette())
        return
    style = app.style()
    if style is None or style.name().lower() != "fusion":
        # setStyle makes a new style and deletes the old one under every widget, even when both are Fusion:
        # once is enough (a second time, a widget still polishing with the old one crashes)
        app.setStyle("Fusion")
    app.setPalette(dark_palette() if theme == "dark" else light_palette())


def standard_icon(name: str) -> QIcon:
    """One of Qt's standard icons by its ``QStyle.StandardPixmap`` name, e.g. ``SP_DialogSaveButton``."""
    style = QApplication.style()
    return style.standardIcon(getattr(QStyle.StandardPixmap, name)) if style is not None else QIcon()


def window_icon() -> QIcon:
    """The console's icon: a shield with a roster's three lines, drawn at the sizes window managers ask for."""
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        s = float(size)
        shield = QPainterPath(QPointF(s * 0.5, s * 0.04))
        shield.lineTo(s * 0.9, s * 0.18)
        shield.cubicTo(s * 0.9, s * 0.62, s * 0.72, s * 0.84, s * 0.5, s * 0.97)
        shield.cubicTo(s * 0.28, s * 0.84, s * 0.1, s * 0.62, s * 0.1, s * 0.18)
        shield.closeSubpath()
        painter.fillPath(shield, QColor("#2f5fa7"))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#ffffff"))
        for i in range(3):
            y = s * (0.3 + i * 0.17)
            painter.drawRoundedRect(QRectF(s * 0.3, y, s * 0.4, max(1.0, s * 0.08)), s * 0.03, s * 0.03)
        painter.end()
        icon.addPixmap(pixmap)
    return icon


def bold(font: QFont) -> QFont:
    heavier = QFont(font)
    heavier.setBold(True)
    return heavier
