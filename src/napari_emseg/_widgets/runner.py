"""Run one engine job at a time in a worker thread, with a napari progress bar and Cancel."""

import threading
from collections.abc import Callable
from typing import Any

from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from qtpy.QtCore import QObject, Signal

from napari_emseg._progress import Cancelled


class JobRunner(QObject):
    """Starts engine calls off the GUI thread and relays their progress back to it.

    The engine calls ``progress(done, total, message)`` from the worker thread; emitting a Qt
    signal from there queues the update onto the GUI thread, so the progress bar and status
    are only ever touched by the thread that owns them.
    """

    progressed = Signal(int, int, str)

    def __init__(self, on_status: Callable[[str], None], parent: QObject | None = None):
        super().__init__(parent)
        self._on_status = on_status
        self._cancel = threading.Event()
        self._worker = None
        self._bar: napari_progress | None = None
        self.progressed.connect(self._show_progress)

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def start(
        self,
        description: str,
        job: Callable[..., Any],
        on_done: Callable[[Any], None],
        on_end: Callable[[], None] | None = None,
    ) -> bool:
        """Run ``job(progress=..., cancel=...)``; ``on_done(result)`` runs on the GUI thread.

        Returns False (and starts nothing) when a job is already running: two runs on the
        same layers at once could interleave their results.
        """
        if self.busy:
            self._on_status("busy: wait for the running job or press Cancel")
            return False
        self._cancel.clear()
        self._bar = napari_progress(total=1000, desc=description)
        self._on_status(f"{description}...")

        def run() -> Any:
            try:
                return job(progress=self.progressed.emit, cancel=self._cancel.is_set)
            except Cancelled:
                return Cancelled

        worker = create_worker(run)

        def finish_ok(result: Any) -> None:
            if result is Cancelled:
                self._on_status(f"{description}: cancelled; nothing was changed")
            else:
                on_done(result)

        def finish_error(err: Exception) -> None:
            message = " ".join(str(err).split()) or type(err).__name__
            self._on_status(f"{description} failed: {message}")

        def cleanup() -> None:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            self._worker = None
            if on_end is not None:
                on_end()

        worker.returned.connect(finish_ok)
        worker.errored.connect(finish_error)
        worker.finished.connect(cleanup)
        self._worker = worker
        worker.start()
        return True

    def cancel(self) -> None:
        if self.busy:
            self._cancel.set()
            self._on_status("cancelling...")

    def _show_progress(self, done: int, total: int, message: str) -> None:
        bar = self._bar  # a queued update may arrive after the job has ended
        if bar is None:
            return
        # A fixed total: napari's bar keeps the range it was made with, so a changing total
        # would show a percentage that disagrees with the counter.
        bar.n = min(round(1000 * done / max(total, 1)), 1000)
        bar.set_description(f"{message} ({done}/{total})")
        bar.refresh()
