"""The Proofread widget's worklist: the places worth correcting, one row per object.

**Find places** scores every object in every slice (:func:`find_suspicious`) and keeps the
:data:`LIMIT` objects whose errors are worth most (:func:`rank_places`: score x size, summed
over their suspicious slices). **Next** / **Previous** (Shift+F / Shift+B) go to a place:
the slice, the object centred and zoomed to, ringed and selected; **Done** (Shift+K) marks it
and goes on. Objects marked done stay out of later lists of the same labels layer.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import PushButton
from qtpy.QtCore import QSize
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from napari_emseg._widgets.base import camera_of
from napari_emseg._widgets.layers import helper_space
from napari_emseg._widgets.overlays import object_radius, ring_place, zoom_to
from napari_emseg.proofreading.consistency import find_suspicious, rank_places, suspicion_map

LIMIT = 50
VISIBLE_ROWS = 4
COLUMNS = ["object", "z", "worth", "why"]


def worth(gain: float) -> str:
    """A gain in pixels, short.

    Examples
    --------
    >>> worth(12.4), worth(1530.0), worth(2_500_000.0)
    ('12', '1.5k', '2.5M')
    """
    if gain >= 1e6:
        return f"{gain / 1e6:.1f}M"
    if gain >= 1e3:
        return f"{gain / 1e3:.1f}k"
    return f"{gain:.0f}"


class _Table(QTableWidget):
    """A table that asks for its minimum height and takes whatever more there is."""

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(super().sizeHint().width(), self.minimumHeight())


class Worklist:
    """The worklist section of a Proofread widget (its buttons, table and navigation)."""

    def __init__(self, widget):
        self.widget = widget
        self.places: list = []
        self.index: int | None = None
        self.find_button = PushButton(text="Find")
        self.find_button.tooltip = (
            f"list the {LIMIT} objects whose errors are worth most (score x size)"
        )
        self.previous_button = PushButton(text="Back")
        self.previous_button.tooltip = "the previous place (Shift+B)"
        self.next_button = PushButton(text="Next")
        self.next_button.tooltip = "the next place: slice, object zoomed and ringed (Shift+F)"
        self.done_button = PushButton(text="Done")
        self.done_button.tooltip = "mark this place done and go to the next (Shift+K)"
        self.table = _Table(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        for column in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)  # the reason takes what is left, in full on hover
        rows = self.table.verticalHeader().defaultSectionSize()
        height = header.sizeHint().height() + VISIBLE_ROWS * rows + 4
        self.table.setMinimumHeight(height)
        self.table.cellDoubleClicked.connect(lambda row_, _col: self.go(row_))
        self.find_button.changed.connect(lambda _value=None: self.find())
        self.previous_button.changed.connect(lambda _value=None: self.previous())
        self.next_button.changed.connect(lambda _value=None: self.next())
        self.done_button.changed.connect(lambda _value=None: self.mark_done())

    @property
    def buttons(self) -> list[PushButton]:
        return [self.find_button, self.previous_button, self.next_button, self.done_button]

    def _done(self) -> set[int]:
        layer = self.widget.labels_layer.value
        return set() if layer is None else self.widget.viewer_session.layer(layer).done

    # -- finding -----------------------------------------------------------------------------
    def find(self) -> bool:
        widget = self.widget
        layer, data = widget._layer_and_data()
        if layer is None:
            return False
        labels = np.array(data)
        membrane = widget.viewer_session.membrane_for(widget.image_layer.value, labels.shape)
        session = widget.session
        trusted = session.reference_slices | session.hand_edited
        done = set(self._done())

        def job(progress, cancel):
            found = find_suspicious(
                labels, membrane=membrane, trusted_slices=trusted, progress=progress, cancel=cancel
            )
            places = rank_places(labels, found, limit=LIMIT, exclude=done)
            listed = {p.obj for p in places}
            shown = [s for s in found if s.obj in listed]
            objects = len({s.obj for s in found})
            return places, len(found), objects, suspicion_map(labels, shown)

        def finished(result, notes) -> None:
            self.places, count, objects, score = result
            self.index = None
            self._fill_table()
            self._show_map(layer, score)
            if not self.places:
                message = "no suspicious place found" + (
                    f" (objects marked done: {len(done)})" if done else ""
                )
            else:
                message = (
                    f"{count:,} suspicious places in {objects:,} objects: the "
                    f"{len(self.places)} worth most are listed (worth = score x size); "
                    "Next (Shift+F) goes to the first"
                )
            widget._set_status(widget._with_notes(message, notes))

        return widget._start_job("find places", job, finished)

    def _show_map(self, layer, score: np.ndarray) -> None:
        viewer = self.widget.viewer
        name = f"{layer.name} suspicion"
        if name in viewer.layers:
            viewer.layers[name].data = score
        else:
            viewer.add_image(
                score,
                name=name,
                **helper_space(layer),
                colormap="red",
                blending="additive",
                opacity=0.5,
                contrast_limits=(0, 1),
            )
        viewer.layers.selection.active = layer  # keep the paint tools at hand

    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.places))
        done = self._done()
        for index, place in enumerate(self.places):
            cells = (place.obj, place.z, worth(place.gain), place.reason)
            for column, value in enumerate(cells):
                item = QTableWidgetItem(str(value))
                item.setToolTip(
                    f"object {place.obj}, slice {place.z}: {place.reason} "
                    f"(score {place.score:.2f} x {place.area} px)"
                )
                self.table.setItem(index, column, item)
            self._show_done(index, place.obj in done)

    def _show_done(self, index: int, done: bool) -> None:
        grey = QBrush(QColor("#808080")) if done else QBrush()
        for column in range(self.table.columnCount()):
            item = self.table.item(index, column)
            if item is not None:
                item.setForeground(grey)
        first = self.table.item(index, 0)
        if first is not None:
            obj = str(self.places[index].obj)
            first.setText(f"✓ {obj}" if done else obj)

    # -- walking -----------------------------------------------------------------------------
    def go(self, index: int) -> bool:
        """Go to a place: its slice, the object zoomed to, ringed and selected."""
        widget = self.widget
        if not 0 <= index < len(self.places):
            return False
        layer, data = widget._layer_and_data()
        if layer is None:
            return False
        place = self.places[index]
        self.index = index
        self.table.selectRow(index)
        self.table.scrollToItem(self.table.item(index, 0))
        zoom_to(widget.viewer, layer, place.z, place.box, camera=camera_of(widget.viewer))
        widget.object.value = place.obj
        radius = object_radius(data[place.z], place.obj)
        ring_place(widget.viewer, layer, place.z, place.centroid, radius)
        state = " (done)" if place.obj in self._done() else ""
        widget._set_status(
            f"place {index + 1} of {len(self.places)}{state}: object {place.obj}, slice "
            f"{place.z}: {place.reason}. Shift+F next, Shift+B back, Shift+K done"
        )
        return True

    def _step(self, direction: int) -> bool:
        if not self.places:
            self.widget._set_status("press Find places first")
            return False
        done = self._done()
        count = len(self.places)
        start = (-1 if direction > 0 else 0) if self.index is None else self.index
        for step in range(1, count + 1):
            index = (start + direction * step) % count
            if self.places[index].obj not in done:
                return self.go(index)
        self.widget._set_status(f"all {count} places are done: Find places lists the next ones")
        return False

    def next(self) -> bool:
        """The next place not marked done (Shift+F)."""
        return self._step(+1)

    def previous(self) -> bool:
        """The previous place not marked done (Shift+B)."""
        return self._step(-1)

    def mark_done(self) -> bool:
        """Mark the current place done and go to the next (Shift+K)."""
        if self.index is None:
            self.widget._set_status("go to a place first (Next, Shift+F)")
            return False
        place = self.places[self.index]
        self._done().add(place.obj)
        self._show_done(self.index, True)
        left = sum(p.obj not in self._done() for p in self.places)
        moved = self.next() if left else False
        if not moved:
            self.widget._set_status(f"all {len(self.places)} places are done")
        return True
