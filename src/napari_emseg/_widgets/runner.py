"""One engine job per viewer at a time, in a worker thread that never touches Qt.

The worker only calls the engine and writes its progress and outcome into plain Python state
under a lock; a timer on the GUI thread reads them, moves napari's progress bar and hands the
result to the widget. Nothing Qt is ever called, emitted or deleted from the worker, so
closing a widget or the whole viewer while a job runs cannot crash: :meth:`JobRunner.shutdown`
cancels the job, waits for the thread and drops its callbacks.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psygnal import Signal
from qtpy.QtCore import QTimer

from napari_emseg._progress import Cancelled

POLL_MS = 100
# A cancelled engine call returns within a tile or a slice; closing waits at most this long.
JOIN_S = 120.0


@dataclass
class _Job:
    description: str
    on_done: Callable[[Any, list[str]], None]
    report: Callable[[str], None]
    owner: object | None
    thread: threading.Thread | None = None
    progress: tuple[int, int, str] | None = None
    outcome: tuple[str, Any, list[str]] | None = None
    bar: Any = None
    notes: list[str] = field(default_factory=list)


def is_alive(widget) -> bool:
    """Whether a Qt object still exists (its C++ side is not deleted)."""
    if widget is None:
        return False
    try:
        widget.objectName()
    except RuntimeError:  # PyQt and PySide: "wrapped C/C++ object ... has been deleted"
        return False
    return True


class JobRunner:
    """Runs one ``job(progress=..., cancel=...)`` at a time for a viewer.

    Signals (emitted on the GUI thread only): ``started(description)``,
    ``progressed(done, total, message)`` and ``finished(description)``.
    """

    started = Signal(str)
    progressed = Signal(int, int, str)
    finished = Signal(str)

    def __init__(self, *, poll_ms: int = POLL_MS):
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._job: _Job | None = None
        self._timer = QTimer(interval=poll_ms)
        self._timer.timeout.connect(self._poll)

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def description(self) -> str | None:
        return None if self._job is None else self._job.description

    @property
    def owner(self) -> object | None:
        return None if self._job is None else self._job.owner

    def start(
        self,
        description: str,
        job: Callable[..., Any],
        on_done: Callable[[Any, list[str]], None],
        *,
        report: Callable[[str], None],
        owner: object | None = None,
    ) -> bool:
        """Run ``job`` in a thread; ``on_done(result, notes)`` runs on the GUI thread.

        ``notes`` are the warnings the engine gave (e.g. an assumed voxel size). ``report``
        shows one-line messages (started, failed, cancelled). Returns False, and says why,
        when a job is running: two jobs on the same layers could interleave their results.
        """
        if self._job is not None:
            report(
                f"busy: {self._job.description} is running; wait for it or press Cancel "
                "(one job per viewer at a time)"
            )
            return False
        from napari.utils import progress as napari_progress

        self._cancel.clear()
        current = _Job(description, on_done, report, owner)
        current.bar = napari_progress(total=1000, desc=description)
        current.thread = threading.Thread(
            target=self._run, args=(current, job), name=f"emseg-{description}", daemon=False
        )
        self._job = current
        report(f"{description}...")
        self.started.emit(description)
        current.thread.start()
        self._timer.start()
        return True

    def _run(self, current: _Job, job: Callable[..., Any]) -> None:
        """The worker thread: the engine call, and plain data written under the lock."""

        def progress(done: int, total: int, message: str) -> None:
            with self._lock:
                current.progress = (int(done), int(total), str(message))

        try:
            # The engine's warnings (an assumed voxel size, ...) become notes in the status.
            # Python 3.11's warning filters are process-wide: this is the one thread that
            # changes them while a job runs.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = job(progress=progress, cancel=self._cancel.is_set)
            notes = list(dict.fromkeys(str(w.message) for w in caught))
            outcome = ("done", result, notes)
        except Cancelled:
            outcome = ("cancelled", None, [])
        except Exception as err:  # reported to the user in one line, never raised into Qt
            outcome = ("failed", err, [])
        with self._lock:
            current.outcome = outcome

    def _poll(self) -> None:
        current = self._job
        if current is None:
            self._timer.stop()
            return
        with self._lock:
            step, current.progress = current.progress, None
            outcome = current.outcome
        if step is not None:
            done, total, message = step
            bar = current.bar
            # A fixed total: napari's bar keeps the range it was made with.
            bar.n = min(round(1000 * done / max(total, 1)), 1000)
            bar.set_description(f"{message} ({done}/{total})")
            bar.refresh()
            self.progressed.emit(done, total, message)
        if outcome is not None:
            self._finish(current, outcome)

    def _finish(self, current: _Job, outcome: tuple[str, Any, list[str]]) -> None:
        self._close(current)
        kind, value, notes = outcome
        alive = current.owner is None or is_alive(current.owner)
        try:
            if not alive:
                pass  # the widget was closed: nothing to show the result in
            elif kind == "cancelled":
                current.report(f"{current.description}: cancelled; nothing was changed")
            elif kind == "failed":
                message = " ".join(str(value).split()) or type(value).__name__
                current.report(f"{current.description} failed: {message}")
            else:
                current.on_done(value, notes)
        except Exception as err:  # a result that cannot be applied must not wedge the runner
            current.report(f"{current.description}: could not apply the result: {err}")
        finally:
            self.finished.emit(current.description)

    def _close(self, current: _Job) -> None:
        """Forget the job: join its (ending) thread, close the bar, stop polling."""
        if current.thread is not None:
            current.thread.join(JOIN_S)
        if current.bar is not None:
            current.bar.close()
            current.bar = None
        self._job = None
        self._timer.stop()

    def cancel(self) -> None:
        if self._job is not None:
            self._cancel.set()
            self._job.report("cancelling...")

    def shutdown(self) -> bool:
        """Cancel the job, wait for its thread and drop its callbacks (a widget or the viewer
        is closing). Returns True (a Qt slot may be asked for a value)."""
        current = self._job
        if current is not None:
            self._cancel.set()
            self._close(current)
            self.finished.emit(current.description)
        return True
