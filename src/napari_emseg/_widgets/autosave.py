"""Autosave of labels layers into crash-safe journals, and their restoration after a crash."""

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QObject, QTimer

from napari_emseg._reader import physical_space
from napari_emseg.proofreading.journal import SessionJournal, autosave_root


class Autosaver(QObject):
    """Journal every watched labels layer shortly after each change.

    Paint strokes and propagations emit the layer's ``paint`` event, which schedules a record
    ``delay_ms`` later (so a stroke is saved once, not per mouse move); a slower periodic check
    also catches undo/redo, which napari applies without that event.
    """

    def __init__(self, *, delay_ms: int = 500, period_ms: int = 5000, parent=None):
        super().__init__(parent)
        self.root = autosave_root()
        self._journals: dict[int, tuple[Labels, SessionJournal]] = {}
        self._dirty: set[int] = set()
        self._soon = QTimer(self, singleShot=True, interval=delay_ms)
        self._soon.timeout.connect(self.flush_dirty)
        self._periodic = QTimer(self, interval=period_ms)
        self._periodic.timeout.connect(self.flush_all)
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

        def mark(_event=None) -> None:
            self._mark(key)

        layer.events.paint.connect(mark)
        layer.events.data.connect(mark)
        return journal

    def _mark(self, key: int) -> None:
        self._dirty.add(key)
        self._soon.start()

    def flush_dirty(self) -> None:
        for key in list(self._dirty):
            self._record(key)
        self._dirty.clear()

    def flush_all(self) -> None:
        for key in list(self._journals):
            self._record(key)

    def _record(self, key: int) -> None:
        entry = self._journals.get(key)
        if entry is None:
            return
        layer, journal = entry
        data = np.asarray(layer.data)
        if list(data.shape) != journal.meta["shape"]:
            journal.discard()  # the layer was replaced by data of another shape: start anew
            del self._journals[key]
            self.watch(layer)
            return
        journal.record(data)

    def forget(self, layer: Labels) -> None:
        """Stop journalling a layer the user removed, and drop its journal."""
        entry = self._journals.pop(id(layer), None)
        if entry is not None:
            entry[1].discard()

    def discard_all(self) -> None:
        """A clean end of the session: nothing needs restoring."""
        for _, journal in self._journals.values():
            journal.discard()
        self._journals.clear()


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
