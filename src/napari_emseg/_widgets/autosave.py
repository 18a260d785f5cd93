"""Autosave of labels layers into crash-safe journals, and their restoration after a crash."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QObject, QTimer

from napari_emseg._reader import physical_space
from napari_emseg.proofreading.journal import SessionJournal, autosave_root


def edited_box(atoms, ndim: int) -> tuple[slice, ...] | None:
    """The box around every voxel a napari paint event changed (its history atoms), or None
    when the event does not say (then the whole volume is compared)."""
    lo, hi = [None] * ndim, [None] * ndim
    for atom in atoms or ():
        key = getattr(atom, "slice_key", None)
        if key is not None:  # a mask-based atom (paint, fill): its bounding box
            bounds = [(k.start or 0, k.stop) if isinstance(k, slice) else (k, k + 1) for k in key]
        else:  # (indices, old values, new values)
            indices = atom[0]
            if len(indices) != ndim or any(np.size(i) == 0 for i in indices):
                continue
            bounds = [(int(np.min(i)), int(np.max(i)) + 1) for i in indices]
        if len(bounds) != ndim or any(b[1] is None for b in bounds):
            return None
        for axis, (start, stop) in enumerate(bounds):
            lo[axis] = start if lo[axis] is None else min(lo[axis], start)
            hi[axis] = stop if hi[axis] is None else max(hi[axis], stop)
    if lo[0] is None:
        return None
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


class Autosaver(QObject):
    """Journal every watched labels layer as it changes, off the GUI thread.

    A paint event (a stroke, a fill, an engine edit) says where it changed the labels, so only
    that box is compared with the journal. Undo and redo change the labels without an event: a
    periodic check notices that the layer's history moved and compares the whole volume, in the
    journal's worker thread, so the GUI never waits for it.
    """

    def __init__(self, *, period_ms: int = 2000, parent=None):
        super().__init__(parent)
        self.root = autosave_root()
        self._journals: dict[int, tuple[Labels, SessionJournal]] = {}
        self._history: dict[int, tuple[int, int]] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emseg-autosave")
        self._lock = threading.Lock()
        self._periodic = QTimer(self, interval=period_ms)
        self._periodic.timeout.connect(self._check_history)
        self._periodic.start()

    def journal_of(self, layer: Labels) -> SessionJournal | None:
        entry = self._journals.get(id(layer))
        return entry[1] if entry else None

    def watch(self, layer: Labels, journal: SessionJournal | None = None) -> SessionJournal:
        """Start journalling ``layer`` (in a new journal unless one is given to continue)."""
        if id(layer) in self._journals:
            return self._journals[id(layer)][1]
        if journal is None:
            journal = SessionJournal.create(
                self.root,
                np.asarray(layer.data),
                name=layer.name,
                scale=tuple(float(s) for s in layer.scale),
                unit=layer.metadata.get("unit", "nm"),
            )
        key = id(layer)
        self._journals[key] = (layer, journal)
        self._history[key] = _history_length(layer)

        def painted(event) -> None:
            box = edited_box(getattr(event, "value", None), layer.ndim)
            # napari announces a paint before it writes the voxels: record once it has.
            QTimer.singleShot(0, lambda: self._after_paint(key, layer, box))

        layer.events.paint.connect(painted)
        layer.events.data.connect(lambda _event=None: self._submit(key, None))
        return journal

    def _after_paint(self, key: int, layer: Labels, box: tuple[slice, ...] | None) -> None:
        self._history[key] = _history_length(layer)
        self._submit(key, box)

    def _check_history(self) -> None:
        """Undo and redo move the history without a paint event: compare everything."""
        for key, (layer, journal) in list(self._journals.items()):
            if list(np.shape(layer.data)) != journal.meta["shape"]:
                self._restart(key)
                continue
            now = _history_length(layer)
            if now != self._history.get(key):
                self._history[key] = now
                self._submit(key, None)

    def _submit(self, key: int, region: tuple[slice, ...] | None) -> None:
        self._worker.submit(self._record, key, region)

    def _record(self, key: int, region: tuple[slice, ...] | None) -> None:
        with self._lock:
            entry = self._journals.get(key)
            if entry is None:
                return
            layer, journal = entry
            data = np.asarray(layer.data)
            if list(data.shape) != journal.meta["shape"]:
                return  # replaced by data of another shape: the periodic check restarts it
            journal.record(data, region)

    def flush(self) -> None:
        """Wait until every submitted record is written (tests, a clean shutdown)."""
        self._worker.submit(lambda: None).result()

    def _restart(self, key: int) -> None:
        """The layer was replaced by data of another shape: a new journal for it."""
        with self._lock:
            layer, journal = self._journals.pop(key)
        journal.discard()
        self.watch(layer)

    def forget(self, layer: Labels) -> None:
        """Stop journalling a layer the user removed, and drop its journal."""
        with self._lock:
            entry = self._journals.pop(id(layer), None)
        if entry is not None:
            entry[1].discard()

    def discard_all(self) -> None:
        """A clean end of the session: nothing needs restoring."""
        with self._lock:
            for _, journal in self._journals.values():
                journal.discard()
            self._journals.clear()


def _history_length(layer: Labels) -> tuple[int, int]:
    """How far the layer's undo and redo stacks reach (napari keeps no public counter)."""
    return len(getattr(layer, "_undo_history", ())), len(getattr(layer, "_redo_history", ()))


def restore_journal(viewer, journal: SessionJournal) -> Labels:
    """Add the journal's labels as a new layer, replaying each recorded change as one undo step."""
    meta = journal.meta
    layer = viewer.add_labels(
        journal.base(),
        name=f"{meta['name']} (restored)",
        **physical_space(tuple(meta["scale"]), meta.get("unit", "nm")),
    )
    shape = tuple(meta["shape"])
    for index, _, new in journal.diffs():
        layer.data_setitem(np.unravel_index(index, shape), new)
    return layer
