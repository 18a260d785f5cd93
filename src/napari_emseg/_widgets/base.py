"""What both dock widgets share: the viewer session and its one job runner, a status line that
says which stage runs, how far it is and how long is left, a compact layout that scrolls
rather than grow past the screen, and a clean close (the job cancelled and joined, every
connection to the session and the viewer dropped)."""

import time
from collections.abc import Callable
from contextlib import suppress

from magicgui.widgets import Container, Label, PushButton
from qtpy.QtCore import QEvent, QSize, Qt, QTimer
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

from napari_emseg._widgets.runner import is_alive
from napari_emseg._widgets.viewer_session import session_of_viewer

# The status is refreshed at least this often while a job runs, even between engine reports.
HEARTBEAT_MS = 1000
# Each docked widget keeps at least this height (it scrolls below it).
MIN_HEIGHT = 320
SPIN_WIDTH = 56
# Room beside the dock title (px), so that napari's title bar shows it whole.
TITLE_MARGIN = 8
# Room below the controls (px): the scroll area's frame and rounding.
SLACK = 4
# A new status is measured after Qt has laid it out (wrapped lines take a layout pass).
GROW_DELAY_MS = 150


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


def row(*widgets, labels: bool = False) -> Container:
    """Widgets side by side, without margins (a compact line of the dock)."""
    line = Container(widgets=list(widgets), layout="horizontal", labels=labels)
    line.margins = (0, 0, 0, 0)
    return line


def show_layer(combo, layer) -> None:
    """Show ``layer`` in a layer choice (the session's choice, made in either widget)."""
    if layer is None or combo.value is layer:
        return
    if layer not in combo.choices:
        combo.reset_choices()  # a layer just added
    if layer in combo.choices:
        combo.value = layer


class DockWidget(QWidget):
    """A dock widget over the viewer's session: one job per viewer, live progress, clean close.

    Subclasses list their action buttons in ``self.actions`` (disabled while any job of the
    viewer runs) and give a Cancel button as ``self.cancel_button``.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.viewer_session = session_of_viewer(napari_viewer)
        self.runner = self.viewer_session.runner
        self.status = Label(value="ready")
        # Long messages wrap (and never ask for width) instead of widening the dock.
        self.status.native.setWordWrap(True)
        self.status.native.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.status.native.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.cancel_button.changed.connect(lambda _value=None: self.runner.cancel())
        self.actions: list = []
        self._job_started: float | None = None
        self._last = (0, 0, "")
        self._heartbeat = QTimer(self, interval=HEARTBEAT_MS)
        self._heartbeat.timeout.connect(self._refresh_progress)
        self._connections: list[tuple[object, Callable]] = []
        self._closed = False
        self._connect(self.runner.started, self._job_started_here)
        self._connect(self.runner.progressed, self._on_progress)
        self._connect(self.runner.finished, self._job_finished)
        connections, session = self._connections, self.viewer_session
        # The C++ widget may go before Python notices: close from the signal, not from self.
        self.destroyed.connect(lambda *_: _close(connections, session, None))

    # -- connections and closing -------------------------------------------------------------
    def _connect(self, signal, slot: Callable) -> None:
        """Connect to a session or viewer signal; disconnected when the widget closes."""
        signal.connect(slot)
        self._connections.append((signal, slot))

    def event(self, event) -> bool:  # noqa: D102 (Qt's name)
        if event.type() == QEvent.ParentChange:
            window = self.window()
            if self.parent() is not None:
                self._docked = True
                if isinstance(window, QMainWindow):  # watch the viewer's window close
                    self.viewer_session.watch_window(window)
            elif self._docked:
                self.close_widget()  # napari takes a closed dock's widget out of the window
        return super().event(event)

    _docked = False

    def close_widget(self) -> None:
        """Cancel and join a job this widget started, and drop every connection."""
        if not self._closed:
            self._closed = True
            self._heartbeat.stop()
            _close(self._connections, self.viewer_session, self)

    # -- layout ------------------------------------------------------------------------------
    def _scrolling_layout(
        self, container: Container, *extra: QWidget, grow: QWidget | None = None
    ) -> None:
        """The controls in a scroll area (it scrolls only on screens too small for them);
        ``grow`` (one of ``extra``) takes the spare height, else it stays below them."""
        for combo in container.native.findChildren(QComboBox):
            # Long layer and model names would set the dock's width; they elide instead.
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(4)
        # napari's theme makes every spin box 90 px wide; ids and slices need less.
        self.setStyleSheet(f"QAbstractSpinBox {{ min-width: {SPIN_WIDTH}px; padding: 1px 4px; }}")
        container.margins = (4, 2, 4, 2)
        inner = QWidget()
        column = QVBoxLayout(inner)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(container.native)
        for widget in extra:
            column.addWidget(widget, 1 if widget is grow else 0)
        if grow is None:
            column.addStretch(1)  # spare height goes below the controls, not between them
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
        """The width the controls and the dock's whole title need (measured now: napari's
        style changes it)."""
        bar = self._scroll.verticalScrollBar().sizeHint().width()
        controls = self._scroll.widget().minimumSizeHint().width() + bar
        dock = self._dock()
        bar = None if dock is None else dock.titleBarWidget()
        if bar is None or bar.layout() is None:
            return controls
        return max(controls, bar.layout().sizeHint().width() + TITLE_MARGIN)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        inner = self._scroll.widget().sizeHint().height()
        return QSize(self._narrowest(), min(MIN_HEIGHT, inner))

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        """As narrow as the controls allow (the canvas keeps the width), as tall as they are."""
        return QSize(self._narrowest(), self._scroll.widget().sizeHint().height())

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if not self._fitted:  # once: afterwards the size is the user's
            self._fitted = True
            QTimer.singleShot(0, self._fit_dock)  # after napari has styled the controls

    def _dock(self) -> QDockWidget | None:
        dock = self.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        return dock

    def _fit_dock(self) -> None:
        """Narrow the dock to what the controls need, and share the height of the dock area
        by need: each dock of the area gets its controls' height while they fit."""
        if not is_alive(self):
            return
        dock, window = self._dock(), self.window()
        if dock is None or not isinstance(window, QMainWindow):
            return
        window.resizeDocks([dock], [self._narrowest()], Qt.Horizontal)
        self._share_height()

    def _share_height(self) -> None:
        """Each dock of this dock's area gets the height its controls need, while they fit."""
        dock, window = self._dock(), self.window()
        if dock is None or not isinstance(window, QMainWindow):
            return
        area = window.dockWidgetArea(dock)
        docks = [
            d
            for d in window.findChildren(QDockWidget)
            if d.isVisible() and not d.isFloating() and window.dockWidgetArea(d) == area
        ]
        if len(docks) > 1:

            def wanted(other) -> int:
                inner = other.widget()
                if not isinstance(inner, DockWidget):
                    return other.height()
                # The dock's title bar and frames: its height less what the controls see.
                frame = other.height() - inner._scroll.viewport().height()
                return inner._needed_height() + frame + SLACK

            sizes = [wanted(d) for d in docks]
            total = sum(d.height() for d in docks)
            # The others keep what they need; this dock gets the rest, up to its need; what
            # is left goes to the dock that can use it (the Proofread widget's worklist).
            mine = docks.index(dock)
            sizes[mine] = max(min(sizes[mine], total - sum(sizes) + sizes[mine]), 0)
            spare = total - sum(sizes)
            if spare > 0:
                takers = [i for i, d in enumerate(docks) if getattr(d.widget(), "grows", False)]
                sizes[takers[0] if takers else mine] += spare
            window.resizeDocks(docks, sizes, Qt.Vertical)

    # -- jobs --------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.runner.busy

    def _set_status(self, message: str) -> None:
        if not self._closed:
            self.status.value = message
            QTimer.singleShot(GROW_DELAY_MS, self._grow_to_fit)  # a longer message needs room

    def _grow_to_fit(self) -> None:
        """Give this dock the height its controls need when they no longer fit (the others
        in its dock area give up what they can spare)."""
        if not is_alive(self) or not hasattr(self, "_scroll"):
            return
        if self._needed_height() > self._scroll.viewport().height():
            self._share_height()

    #: Whether spare height of the dock area is best given to this widget.
    grows = False

    def _needed_height(self) -> int:
        """The controls' height at the dock's width (wrapped messages included)."""
        inner = self._scroll.widget()
        inner.layout().activate()
        needed = inner.sizeHint().height()
        if inner.hasHeightForWidth():
            needed = max(needed, inner.heightForWidth(self._scroll.viewport().width()))
        return needed

    def _start_job(self, description: str, job, on_done) -> bool:
        """Run ``job`` on the viewer's runner; ``on_done(result, notes)`` on the GUI thread."""
        return self.runner.start(description, job, on_done, report=self._report, owner=self)

    def _report(self, message: str) -> None:
        """A job's message; one that needs the voxel size points at the field that takes it."""
        if "--voxel-size Z Y X" in message:
            message = message.replace("--voxel-size Z Y X", "voxel (nm) field")
            field = getattr(self, "voxel_size", None)
            if field is not None:
                field.highlight()
        self._set_status(message)

    def _set_running(self, running: bool) -> None:
        for button in self.actions:
            button.enabled = not running
        self.cancel_button.enabled = running

    def _job_started_here(self, description: str) -> None:
        self._set_running(True)
        if self.runner.owner is self:
            self._job_started, self._last = time.monotonic(), (0, 0, "")
            self._heartbeat.start()
        else:
            self._set_status(f"busy: {description} is running (Cancel stops it)")

    def _job_finished(self, _description: str) -> None:
        self._heartbeat.stop()
        self._job_started = None
        self._set_running(False)
        if self.status.value.startswith("busy: "):  # another widget's job has ended
            self._set_status("ready")

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self._last = (done, total, message)
        self._refresh_progress()

    def _refresh_progress(self) -> None:
        if self._job_started is None or self.runner.owner is not self:
            return
        description = self.runner.description or ""
        done, total, message = self._last
        elapsed = time.monotonic() - self._job_started
        parts = [message or f"{description}..."]
        if total:
            parts.append(f"{100 * done // total}%")
        if "left" not in message:  # the engine's own estimate, from measured steps, wins
            parts.append(time_left(elapsed, done, total) or f"{elapsed:.0f} s")
        self._set_status(" - ".join(parts))

    @staticmethod
    def _with_notes(message: str, notes: list[str]) -> str:
        """The message and the engine's notes (each once, in the GUI's words)."""
        shown = [note.replace("--voxel-size Z Y X", "voxel (nm) field") for note in notes]
        return message + "".join(f"\nnote: {note}" for note in dict.fromkeys(shown))


def _close(connections: list, session, widget) -> None:
    """Drop a closed widget's connections; cancel and join the job it started."""
    while connections:
        signal, slot = connections.pop()
        with suppress(ValueError, RuntimeError, TypeError):  # gone with its emitter
            signal.disconnect(slot)
    runner = session.runner
    if runner.busy and (widget is None or runner.owner is widget):
        if widget is None and is_alive(runner.owner):
            return  # another widget's job
        runner.shutdown()
    if widget is not None and session.proofread_widget is widget:
        session.proofread_widget = None
