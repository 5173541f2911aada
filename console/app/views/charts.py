"""Two small charts drawn with QPainter: ungoverned agents over time, and horizontal bars of counts (each
bar can open the list behind it)."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from console.app import theme


class TrendChart(QWidget):
    """A line of (time, count) points with its axes; says so when there is nothing to draw yet."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.points: list[tuple[datetime, int]] = []
        self.empty_text = "Loading…"
        self.setMinimumSize(220, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName(title)

    def sizeHint(self) -> QSize:
        return QSize(520, 220)

    def set_points(self, points: list[tuple[datetime, int]]) -> None:
        self.points = sorted(points)
        self.empty_text = "No samples yet: the first comes with the next refresh"
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = _titled_painter(self, self.title)
        metrics = painter.fontMetrics()
        top = (max(n for _, n in self.points) if self.points else 0) or 1
        # the axis labels' column is as wide as the widest label; the plot starts below the title and
        # half a line down, so that the top label is never clipped by the title or the widget's edge
        label_w = metrics.horizontalAdvance(f"{top:,}") + 8
        line = metrics.height()
        area = QRectF(label_w + 6, line * 2.2, self.width() - label_w - 18, self.height() - line * 4)
        if not self.points:
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, self.empty_text)
            return
        grid, text, accent = theme.colour("grid"), theme.colour("text"), theme.colour("bad")
        painter.setPen(QPen(grid, 1))
        for i in range(5):
            y = area.bottom() - area.height() * i / 4
            painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
            painter.setPen(text)
            painter.drawText(QRectF(0, y - line / 2, label_w, line), Qt.AlignmentFlag.AlignRight,
                             f"{round(top * i / 4):,}")
            painter.setPen(QPen(grid, 1))
        start, end = self.points[0][0], self.points[-1][0]
        span = (end - start).total_seconds() or 1.0

        def at(when: datetime, n: int) -> QPointF:
            x = area.left() + area.width() * ((when - start).total_seconds() / span if len(self.points) > 1 else 0.5)
            return QPointF(x, area.bottom() - area.height() * n / top)

        path = QPainterPath(at(*self.points[0]))
        for point in self.points[1:]:
            path.lineTo(at(*point))
        painter.setPen(QPen(accent, 2))
        painter.drawPath(path)
        painter.setBrush(accent)
        for point in self.points[-50:]:
            painter.drawEllipse(at(*point), 2.5, 2.5)
        painter.setPen(text)
        fmt = "%H:%M:%S" if span < 3600 else "%H:%M" if span < 2 * 86400 else "%Y-%m-%d"
        stamp_w = area.width() / 2
        painter.drawText(QRectF(area.left(), area.bottom() + 4, stamp_w, line), Qt.AlignmentFlag.AlignLeft,
                         start.strftime(fmt) + " UTC")
        painter.drawText(QRectF(area.right() - stamp_w, area.bottom() + 4, stamp_w, line),
                         Qt.AlignmentFlag.AlignRight, end.strftime(fmt))


class BarChart(QWidget):
    """Horizontal bars, one per (label, count), largest first as given. When ``activatable``, a click on
    a bar (or Enter on the one chosen with the arrow keys) emits ``barActivated`` with its index."""

    barActivated = Signal(int)

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.bars: list[tuple[str, int]] = []
        self.empty_text = "Loading…"
        self.current = -1
        self.setMinimumSize(180, 120)
        self.setAccessibleName(title)

    def make_activatable(self, tip: str) -> None:
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(tip)
        self.setAccessibleDescription(tip)

    def _row_height(self) -> float:
        line = self.fontMetrics().height() + 6.0
        return min(line, (self.height() - self._top()) / max(1, len(self.bars)))

    def _top(self) -> float:
        return self.fontMetrics().height() * 1.6

    def sizeHint(self) -> QSize:
        line = self.fontMetrics().height() + 6
        return QSize(360, int(self._top()) + 8 + line * max(3, len(self.bars)))

    def set_bars(self, bars: list[tuple[str, int]]) -> None:
        self.bars = list(bars)
        self.empty_text = "Nothing reported yet"
        self.current = min(self.current, len(self.bars) - 1)
        self.updateGeometry()
        self.update()

    def bar_at(self, y: float) -> int:
        """The index of the bar at height ``y``, or -1."""
        if not self.bars:
            return -1
        row = int((y - self._top()) // self._row_height())
        return row if 0 <= row < len(self.bars) and y >= self._top() else -1

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        row = self.bar_at(event.position().y())
        if self.focusPolicy() != Qt.FocusPolicy.NoFocus and event.button() == Qt.MouseButton.LeftButton and row >= 0:
            self.current = row
            self.update()
            self.barActivated.emit(row)
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self.focusPolicy() == Qt.FocusPolicy.NoFocus or not self.bars:
            super().keyPressEvent(event)
            return
        if event.key() in (Qt.Key.Key_Down, Qt.Key.Key_Up):
            step = 1 if event.key() == Qt.Key.Key_Down else -1
            self.current = max(0, min(len(self.bars) - 1, self.current + step))
            self.update()
        elif event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.barActivated.emit(max(0, self.current))
        else:
            super().keyPressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = _titled_painter(self, self.title)
        top_y = self._top()
        if not self.bars:
            painter.drawText(QRectF(0, top_y, self.width(), self.height() - top_y), Qt.AlignmentFlag.AlignCenter,
                             self.empty_text)
            return
        metrics = painter.fontMetrics()
        top = max(n for _, n in self.bars) or 1
        count_w = float(metrics.horizontalAdvance(f"{top:,}") + 8)
        label_w = min(self.width() * 0.5, max(metrics.horizontalAdvance(label) for label, _ in self.bars) + 16.0)
        row_h = self._row_height()
        width = max(10.0, self.width() - label_w - count_w - 16)
        text, bar = theme.colour("text"), theme.colour("accent")
        for i, (label, n) in enumerate(self.bars):
            y = top_y + i * row_h
            if i == self.current and self.hasFocus():
                painter.setPen(QPen(theme.colour("grid"), 1, Qt.PenStyle.DotLine))
                painter.drawRect(QRectF(2, y, self.width() - 4, row_h))
            painter.setPen(text)
            painter.drawText(QRectF(8, y, label_w - 8, row_h), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                             metrics.elidedText(label, Qt.TextElideMode.ElideRight, int(label_w - 12)))
            painter.fillRect(QRectF(label_w, y + 3, width * n / top, row_h - 6), bar)
            painter.drawText(QRectF(label_w + width * n / top + 4, y, count_w, row_h),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, f"{n:,}")


def _titled_painter(widget: QWidget, title: str) -> QPainter:
    """A painter on ``widget`` with its background filled and ``title`` drawn in bold at the top left."""
    painter = QPainter(widget)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.fillRect(widget.rect(), widget.palette().base())
    painter.setFont(theme.bold(widget.font()))
    painter.setPen(theme.colour("text"))
    painter.drawText(QRectF(8, 4, widget.width() - 16, painter.fontMetrics().height() + 2), Qt.AlignmentFlag.AlignLeft,
                     title)
    painter.setFont(widget.font())
    return painter
