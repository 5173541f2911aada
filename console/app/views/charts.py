"""Two small charts drawn with QPainter: ungoverned agents over time, and horizontal bars of counts."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

ACCENT = QColor("#b3261e")
BAR = QColor("#3d6fb6")
GRID = QColor("#d8d8d8")
TEXT = QColor("#333333")


class TrendChart(QWidget):
    """A line of (time, count) points with its axes; says so when there is nothing to draw yet."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.points: list[tuple[datetime, int]] = []
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName(title)

    def sizeHint(self) -> QSize:
        return QSize(520, 220)

    def set_points(self, points: list[tuple[datetime, int]]) -> None:
        self.points = sorted(points)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = _titled_painter(self, self.title)
        area = QRectF(48, 30, self.width() - 64, self.height() - 58)
        if not self.points:
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "No samples yet")
            return
        top = max(n for _, n in self.points) or 1
        painter.setPen(QPen(GRID, 1))
        for i in range(5):
            y = area.bottom() - area.height() * i / 4
            painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
            painter.setPen(TEXT)
            painter.drawText(QRectF(0, y - 8, 44, 16), Qt.AlignmentFlag.AlignRight, f"{round(top * i / 4):,}")
            painter.setPen(QPen(GRID, 1))
        start, end = self.points[0][0], self.points[-1][0]
        span = (end - start).total_seconds() or 1.0

        def at(when: datetime, n: int) -> QPointF:
            x = area.left() + area.width() * ((when - start).total_seconds() / span if len(self.points) > 1 else 0.5)
            return QPointF(x, area.bottom() - area.height() * n / top)

        path = QPainterPath(at(*self.points[0]))
        for point in self.points[1:]:
            path.lineTo(at(*point))
        painter.setPen(QPen(ACCENT, 2))
        painter.drawPath(path)
        painter.setBrush(ACCENT)
        for point in self.points[-50:]:
            painter.drawEllipse(at(*point), 2.5, 2.5)
        painter.setPen(TEXT)
        fmt = "%H:%M:%S" if span < 3600 else "%H:%M" if span < 2 * 86400 else "%Y-%m-%d"
        painter.drawText(QRectF(area.left(), area.bottom() + 4, 120, 16), Qt.AlignmentFlag.AlignLeft,
                         start.strftime(fmt) + " UTC")
        painter.drawText(QRectF(area.right() - 120, area.bottom() + 4, 120, 16), Qt.AlignmentFlag.AlignRight,
                         end.strftime(fmt))


class BarChart(QWidget):
    """Horizontal bars, one per (label, count), largest first as given."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.bars: list[tuple[str, int]] = []
        self.setMinimumSize(260, 140)
        self.setAccessibleName(title)

    def sizeHint(self) -> QSize:
        return QSize(360, 40 + 22 * max(3, len(self.bars)))

    def set_bars(self, bars: list[tuple[str, int]]) -> None:
        self.bars = list(bars)
        self.updateGeometry()
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = _titled_painter(self, self.title)
        if not self.bars:
            painter.drawText(QRectF(0, 28, self.width(), self.height() - 28), Qt.AlignmentFlag.AlignCenter, "None")
            return
        top = max(n for _, n in self.bars) or 1
        label_w, count_w, row_h = 130.0, 60.0, min(22.0, (self.height() - 30) / len(self.bars))
        width = max(10.0, self.width() - label_w - count_w - 24)
        for i, (label, n) in enumerate(self.bars):
            y = 28 + i * row_h
            painter.setPen(TEXT)
            painter.drawText(QRectF(8, y, label_w - 8, row_h), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                             painter.fontMetrics().elidedText(label, Qt.TextElideMode.ElideRight, int(label_w - 12)))
            painter.fillRect(QRectF(label_w, y + 3, width * n / top, row_h - 6), BAR)
            painter.drawText(QRectF(label_w + width * n / top + 4, y, count_w, row_h),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, f"{n:,}")


def _titled_painter(widget: QWidget, title: str) -> QPainter:
    """A painter on ``widget`` with its background filled and ``title`` drawn in bold at the top left."""
    painter = QPainter(widget)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.fillRect(widget.rect(), widget.palette().base())
    bold = QFont(widget.font())
    bold.setBold(True)
    painter.setFont(bold)
    painter.setPen(TEXT)
    painter.drawText(QRectF(8, 4, widget.width() - 16, 20), Qt.AlignmentFlag.AlignLeft, title)
    painter.setFont(widget.font())
    return painter
