"""What both dock widgets share: the viewer session, a job runner, a status line that says
which stage runs, how far it is and how long is left, and a layout that scrolls instead of
growing past the screen."""

import time

from magicgui.widgets import Container, Label
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFrame,
    QMainWindow,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from napari_emseg._widgets.runner import JobRunner
from napari_emseg._widgets.viewer_session import session_of_viewer

# The status is refreshed at least this often while a job runs, even between engine reports.
HEARTBEAT_MS = 1000
# Each docked widget keeps at least this height (it scrolls below it), so two fit one screen.
MIN_HEIGHT = 320


def camera_of(viewer):
    """The viewer's camera: ``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def time_left(elapsed: float, done: int, total: int) -> str:
    """A rough estimate of the time still needed, from the pace so far.

    Examples
    --------
    >>> time_left(10.0, 1, 4), time_left(90.0, 3, 4), time_left(5.0, 0, 4)
    ('~30 s left', '~30 s left', '')
    >>> time_left(600.0, 1, 3)
    '~20 min left'
    """
    if done <= 0 or total <= done:
        return ""
    seconds = elapsed * (total - done) / done
    return f"~{seconds:.0f} s left" if seconds < 120 else f"~{seconds / 60:.0f} min left"


class DockWidget(QWidget):
    """A dock widget over the viewer's session, with one job at a time and live progress."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.viewer_session = session_of_viewer(napari_viewer)
        self.status = Label(value="ready")
        # Long messages wrap (and never ask for width) instead of widening the dock.
        self.status.native.setWordWrap(True)
        self.status.native.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.runner = JobRunner(self._show_progress, parent=self)
        self._job: tuple[str, float] | None = None  # (description, start time)
        self._last = (0, 0, "")
        self._heartbeat = QTimer(self, interval=HEARTBEAT_MS)
        self._heartbeat.timeout.connect(self._refresh_progress)
        self.runner.progressed.connect(self._on_progress)

    def _scrolling_layout(self, container: Container, *extra: QWidget) -> None:
        """The controls in a scroll area, so that two docked widgets fit a 1000 px screen."""
        for combo in container.native.findChildren(QComboBox):
            # Long layer and model names would set the dock's width; they elide instead.
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        inner = QWidget()
        column = QVBoxLayout(inner)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(container.native)
        for widget in extra:
            column.addWidget(widget)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # scroll down, never sideways
        self._scroll = scroll
        self._fitted = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)

    def _narrowest(self) -> int:
        """The width the controls need (measured now: napari's style changes it)."""
        bar = self._scroll.verticalScrollBar().sizeHint().width()
        return self._scroll.widget().minimumSizeHint().width() + bar

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        inner = self._scroll.widget().sizeHint().height()
        return QSize(self._narrowest(), min(MIN_HEIGHT, inner))

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        """As narrow as the controls allow: the canvas keeps the width."""
        return QSize(self._narrowest(), super().sizeHint().height())

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if not self._fitted:  # once: afterwards the width is the user's
            self._fitted = True
            QTimer.singleShot(0, self._fit_dock)  # after napari has styled the controls

    def _fit_dock(self) -> None:
        """Narrow the dock to what the controls need, measured with napari's style."""
        dock, window = self.parentWidget(), self.window()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        if dock is not None and isinstance(window, QMainWindow):
            window.resizeDocks([dock], [self._narrowest()], Qt.Horizontal)

    @property
    def busy(self) -> bool:
        return self.runner.busy

    def _set_status(self, message: str) -> None:
        self.status.value = message

    def _start_job(self, description: str, job, on_done, on_end=None) -> bool:
        def end() -> None:
            self._heartbeat.stop()
            self._job = None
            if on_end is not None:
                on_end()

        started = self.runner.start(description, job, on_done, end)
        if started:
            self._job, self._last = (description, time.monotonic()), (0, 0, "")
            self._heartbeat.start()
        return started

    def _show_progress(self, message: str) -> None:
        """Messages from the runner (start, failure, cancel) replace the progress line."""
        self._set_status(message)

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self._last = (done, total, message)
        self._refresh_progress()

    def _refresh_progress(self) -> None:
        if self._job is None:
            return
        description, start = self._job
        done, total, message = self._last
        elapsed = time.monotonic() - start
        parts = [message or f"{description}..."]
        if total:
            parts.append(f"{100 * done // total}%")
        parts.append(time_left(elapsed, done, total) or f"{elapsed:.0f} s")
        self._set_status(" - ".join(parts))
