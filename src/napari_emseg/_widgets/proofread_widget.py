"""The "Proofread" dock widget: object tools, targeted repropagation and error finding.

Every edit goes through napari's undoable ``data_setitem`` (Ctrl+Z undoes a whole merge, split
or repropagation); locked objects and slices edited by hand are never changed by a
repropagation; long work runs in a worker with progress and Cancel.
"""

from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, SpinBox
from napari.layers import Image, Labels, Points
from qtpy.QtWidgets import QFileDialog, QTableWidget, QTableWidgetItem

from napari_emseg._widgets.base import DockWidget, camera_of
from napari_emseg._widgets.layers import (
    apply_as_undoable_edit,
    choices_of,
    same_space_as,
    stack_of,
)
from napari_emseg._widgets.shortcuts import bind_shortcuts
from napari_emseg._widgets.viewer_session import LayerSession
from napari_emseg._widgets.voxel_field import VoxelSizeField
from napari_emseg.proofreading import (
    ProofreadingSession,
    delete_object,
    find_suspicious,
    merge_objects,
    next_free_id,
    object_extent,
    split_object,
    suspicion_map,
)

SEED_LAYER = "split seeds"


def adapted_card_path(image_layer) -> Path:
    """Where Adapt saves its model card: beside the image's file, else in the user's cache."""
    import time

    source = getattr(getattr(image_layer, "source", None), "path", None)
    folder = Path(source).parent if source else Path.home() / ".cache" / "napari-emseg" / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{image_layer.name}-adapted-{time.strftime('%Y%m%d-%H%M%S')}.json"


MARK_LAYER = "suspicious object"


class ProofreadWidget(DockWidget):
    """Correct a segmentation object by object and find where it is wrong."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.suspicious: list = []
        self._next_index = 0
        self._watched: Labels | None = None
        self._layer_session: LayerSession | None = None

        self.labels_layer = ComboBox(label="labels", choices=choices_of(Labels, napari_viewer))
        self.image_layer = ComboBox(label="image", choices=choices_of(Image, napari_viewer))
        self.voxel_size = VoxelSizeField(self.viewer_session, self.image_layer, self._set_status)
        self.object = SpinBox(label="object", min=0, max=2**31 - 1)
        self.other = SpinBox(label="merge object", min=0, max=2**31 - 1)
        self.this_slice_only = CheckBox(text="edits in the current slice only", value=False)
        self.buttons = {
            name: PushButton(text=text)
            for name, text in [
                ("new", "New id"),
                ("jump", "Jump to"),
                ("extent", "3D extent"),
                ("lock", "Lock"),
                ("delete", "Delete"),
                ("merge", "Merge into object"),
                ("seeds", "Split seeds"),
                ("split", "Split"),
                ("reference", "Add reference (current z)"),
                ("repropagate", "Repropagate edited"),
                ("repropagate_one", "Repropagate object"),
                ("adapt", "Adapt to corrections"),
                ("find", "Find suspicious"),
                ("next", "Next suspicious"),
                ("export", "TIFF + CSV..."),
                ("export_zarr", "OME-Zarr..."),
                ("cancel", "Cancel"),
            ]
        }
        self.buttons["cancel"].enabled = False
        self.z_first = SpinBox(label="z from", min=0, max=0)
        self.z_last = SpinBox(label="z to", min=0, max=0)
        self.references = Label(value="references: none")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["object", "z", "score", "reason"])
        self.table.horizontalHeader().setStretchLastSection(True)  # reasons are long
        self.table.cellDoubleClicked.connect(lambda row, _col: self.go_to_suspicious(row))

        b = self.buttons

        def row(*widgets, labels: bool = False) -> Container:
            return Container(widgets=list(widgets), layout="horizontal", labels=labels)

        self.container = Container(
            widgets=[
                self.labels_layer,
                self.image_layer,
                self.voxel_size.widget,
                self.object,
                row(b["new"], b["jump"], b["extent"]),
                row(b["lock"], b["delete"]),
                self.other,
                row(b["merge"]),
                row(b["seeds"], b["split"]),
                self.this_slice_only,
                row(b["reference"]),
                self.references,
                self.z_first,
                self.z_last,
                row(b["repropagate"]),
                row(b["repropagate_one"]),
                row(b["adapt"]),
                row(b["find"]),
                row(b["next"]),
                row(b["export"], b["export_zarr"]),
                b["cancel"],
                self.status,
            ]
        )
        rows = self.table.verticalHeader().defaultSectionSize()
        header = self.table.horizontalHeader().sizeHint().height()
        self.table.setMinimumHeight(header + 8 * rows + 4)  # at least 8 suspicious places
        self._scrolling_layout(self.container, self.table)

        actions = {
            "new": self.new_id,
            "jump": self.jump_to_object,
            "extent": self.show_extent,
            "lock": self.toggle_lock,
            "delete": self.delete,
            "merge": self.merge,
            "seeds": self.place_seeds,
            "split": self.split,
            "reference": self.add_reference,
            "repropagate": self.repropagate_edited,
            "repropagate_one": self.repropagate_selected,
            "adapt": self.adapt_to_corrections,
            "find": self.find_suspicious,
            "next": self.next_suspicious,
            "export": self._export_clicked,
            "export_zarr": self._export_zarr_clicked,
            "cancel": self.runner.cancel,
        }
        for name, action in actions.items():
            b[name].changed.connect(lambda _value=None, run=action: run())
        self.labels_layer.changed.connect(self._watch)
        self.object.changed.connect(self._object_changed)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self._refresh_layers)
        bind_shortcuts(napari_viewer, self)
        self.viewer_session.proofread_widget = self
        self.viewer_session.references_changed.connect(self._show_references)
        self._refresh_layers()

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def session(self) -> ProofreadingSession:
        """The chosen labels layer's session, shared with the Segment widget."""
        if self._layer_session is None:
            return ProofreadingSession()
        return self._layer_session.session

    def _refresh_layers(self, _event=None) -> None:
        self.labels_layer.reset_choices()
        self.image_layer.reset_choices()
        self.voxel_size.show()
        self._watch(self.labels_layer.value)

    def _watch(self, layer=None) -> None:
        """Follow the chosen labels layer: its selected label and its hand edits."""
        if layer is self._watched:
            return
        if self._watched is not None:
            self._watched.events.selected_label.disconnect(self._on_selected_label)
        self._watched = layer
        self._layer_session = None if layer is None else self.viewer_session.layer(layer)
        if layer is None:
            return
        layer.events.selected_label.connect(self._on_selected_label)
        self._show_references(layer)
        depth = layer.data.shape[0] if layer.data.ndim == 3 else 1
        for box in (self.z_first, self.z_last):
            box.max = depth - 1
        self.z_last.value = depth - 1
        self.object.value = int(layer.selected_label)

    def _show_references(self, layer=None) -> None:
        if layer is not None and layer is self._watched:
            shown = self.viewer_session.references(layer) or "none"
            self.references.value = f"references: {shown}"

    def _on_selected_label(self, _event=None) -> None:
        if self._watched is not None and self.object.value != self._watched.selected_label:
            self.object.value = int(self._watched.selected_label)

    def _object_changed(self, value: int) -> None:
        layer = self.labels_layer.value
        if layer is not None and layer.selected_label != value:
            layer.selected_label = int(value)

    def _layer_and_data(self):
        layer = self.labels_layer.value
        if layer is None or layer.data.ndim != 3:
            self._set_status("choose a 3D labels layer first")
            return None, None
        return layer, stack_of(layer)

    def _current_z(self, layer) -> int:
        z = int(round(float(layer.world_to_data(self.viewer.dims.point)[0])))
        return min(max(z, 0), layer.data.shape[0] - 1)

    def _apply_diff(self, layer, diff, message: str) -> None:
        if diff.size:
            with self.viewer_session.layer(layer).tool_edit():
                layer.data_setitem(diff.indices, diff.values.astype(layer.data.dtype))
        self._set_status(f"{message} ({diff.size} voxels; Ctrl+Z undoes it)")

    def _refuse_locked(self, *ids: int) -> bool:
        locked = sorted(set(ids) & self.session.locked)
        if locked:
            self._set_status(f"object(s) {locked} are locked: unlock them first")
        return bool(locked)

    # -- object tools ------------------------------------------------------------------------
    def new_id(self) -> int | None:
        layer, data = self._layer_and_data()
        if layer is None:
            return None
        self.object.value = next_free_id(data)
        self._set_status(f"new id {self.object.value}: paint it with the brush")
        return self.object.value

    def jump_to_object(self, obj: int | None = None, z: int | None = None) -> bool:
        layer, data = self._layer_and_data()
        obj = int(self.object.value if obj is None else obj)
        if layer is None or obj == 0 or not (data == obj).any():
            self._set_status(f"object {obj} is not in the labels")
            return False
        extent = object_extent(data, obj)
        centre = list(extent.centroid)
        if z is not None:
            ys, xs = np.nonzero(data[z] == obj)
            if ys.size:
                centre = [z, ys.mean(), xs.mean()]
        world = layer.data_to_world(centre)
        self.viewer.dims.set_current_step(0, int(round(centre[0])))
        camera_of(self.viewer).center = tuple(world[-2:])
        self.object.value = obj
        return True

    def show_extent(self) -> bool:
        layer, data = self._layer_and_data()
        obj = int(self.object.value)
        if layer is None or obj == 0 or not (data == obj).any():
            self._set_status(f"object {obj} is not in the labels")
            return False
        extent = object_extent(data, obj)
        layer.selected_label = obj
        layer.show_selected_label = not layer.show_selected_label
        if layer.show_selected_label:
            self.jump_to_object(obj)
        self._set_status(
            f"object {obj}: {extent.voxels} voxels, z {extent.z_range[0]}..{extent.z_range[1]}, "
            f"box {extent.bbox}" + (" (shown alone)" if layer.show_selected_label else "")
        )
        return True

    def toggle_lock(self) -> bool:
        obj = int(self.object.value)
        if obj == 0:
            return False
        locked = self.session.toggle_lock(obj)
        self._set_status(
            f"object {obj} {'locked' if locked else 'unlocked'}; locked: "
            f"{sorted(self.session.locked) or 'none'}"
        )
        return locked

    def delete(self) -> bool:
        layer, data = self._layer_and_data()
        obj = int(self.object.value)
        if layer is None or obj == 0 or self._refuse_locked(obj):
            return False
        z = self._current_z(layer) if self.this_slice_only.value else None
        self._apply_diff(layer, delete_object(data, obj, z=z), f"deleted object {obj}")
        return True

    def merge(self, other: int | None = None) -> bool:
        layer, data = self._layer_and_data()
        keep, other = int(self.object.value), int(self.other.value if other is None else other)
        if layer is None or 0 in (keep, other) or keep == other:
            self._set_status("choose two different objects to merge")
            return False
        if self._refuse_locked(keep, other):
            return False
        z = self._current_z(layer) if self.this_slice_only.value else None
        self._apply_diff(
            layer, merge_objects(data, keep, [other], z=z), f"merged {other} into {keep}"
        )
        return True

    def merge_under_cursor(self) -> bool:
        layer = self.labels_layer.value
        if layer is None:
            return False
        value = layer.get_value(self.viewer.cursor.position, world=True)
        if not value:
            self._set_status("point at the object to merge into the selected one")
            return False
        return self.merge(int(value))

    def place_seeds(self) -> Points | None:
        layer, _ = self._layer_and_data()
        if layer is None:
            return None
        if SEED_LAYER in self.viewer.layers:
            seeds = self.viewer.layers[SEED_LAYER]
        else:
            seeds = self.viewer.add_points(
                ndim=3,
                name=SEED_LAYER,
                **same_space_as(layer),
                size=8,
                face_color="yellow",
            )
        self.viewer.layers.selection.active = seeds
        seeds.mode = "add"
        self._set_status("click one seed per part of the object, then 'Split object at seeds'")
        return seeds

    def split(self) -> bool:
        layer, data = self._layer_and_data()
        obj = int(self.object.value)
        if layer is None or SEED_LAYER not in self.viewer.layers or self._refuse_locked(obj):
            self._set_status("place split seeds first") if layer is not None else None
            return False
        points = self.viewer.layers[SEED_LAYER]
        seeds = [
            tuple(int(round(c)) for c in layer.world_to_data(points.data_to_world(p)))
            for p in points.data
        ]
        membrane = self.viewer_session.membrane_for(self.image_layer.value, data.shape)
        try:
            diff = split_object(data, obj, seeds, membrane=membrane)
        except ValueError as err:
            self._set_status(f"split refused: {err}")
            return False
        self._apply_diff(layer, diff, f"split object {obj} into {len(seeds)} parts")
        points.data = np.empty((0, 3))
        self.viewer.layers.selection.active = layer
        return True

    # -- repropagation ----------------------------------------------------------------------
    def add_reference(self) -> int | None:
        layer, data = self._layer_and_data()
        if layer is None:
            return None
        z = self._current_z(layer)
        self.viewer_session.add_reference(layer, z)
        self.session.snapshot_reference(data)
        self._set_status(f"slice {z} is a reference: correct it, then repropagate")
        return z

    def repropagate_edited(self) -> bool:
        layer, data = self._layer_and_data()
        if layer is None:
            return False
        if not self.session.reference_slices:
            self.add_reference()
        changed = self.session.changed_objects(data) - self.session.locked
        if not changed:
            self._set_status("no object changed on the reference slices since the last run")
            return False
        return self._repropagate(layer, data, changed)

    def repropagate_selected(self) -> bool:
        layer, data = self._layer_and_data()
        obj = int(self.object.value)
        if layer is None or obj == 0 or self._refuse_locked(obj):
            return False
        if not self.session.reference_slices:
            self.add_reference()
        return self._repropagate(layer, data, {obj})

    def _repropagate(self, layer, data, objects: set[int]) -> bool:
        image_layer = self.image_layer.value
        if image_layer is None or stack_of(image_layer).shape != data.shape:
            self._set_status("choose the image the labels belong to (same shape)")
            return False
        labels = np.array(data)
        session = self.session
        z_range = (int(self.z_first.value), int(self.z_last.value))
        if not z_range[0] <= min(session.reference_slices) <= z_range[1]:
            self._set_status(f"z range {z_range} must contain the reference slices")
            return False
        job = self.viewer_session.repropagate_job(
            image_layer,
            layer,
            labels,
            references=sorted(session.reference_slices),
            objects=objects,
            z_range=z_range,
        )

        def done(result) -> None:
            with self.viewer_session.layer(layer).tool_edit():
                changed = apply_as_undoable_edit(layer, result.labels, since=labels)
            session.snapshot_reference(np.asarray(layer.data))
            self._set_status(
                f"repropagated objects {sorted(objects)}: {changed} voxels changed "
                "(Ctrl+Z undoes it)"
            )

        if not self._start_job("repropagate", job, done, lambda: self._set_running(False)):
            return False
        self._set_running(True)
        return True

    def adapt_to_corrections(self) -> bool:
        """Fine-tune the membrane network on the reference slices; later runs use it."""
        layer, data = self._layer_and_data()
        image_layer = self.image_layer.value
        if layer is None or image_layer is None or stack_of(image_layer).shape != data.shape:
            self._set_status("choose the image and its labels (same shape) first")
            return False
        if not self.session.reference_slices:
            self.add_reference()
        references = sorted(self.session.reference_slices)
        out = adapted_card_path(image_layer)
        job = self.viewer_session.adapt_job(image_layer, np.array(data), references, out)

        def done(result) -> None:
            card, membrane = result
            self.viewer_session.use_model(card)
            name = f"{image_layer.name} membrane"
            found = [lay for lay in self.viewer.layers if lay.name == name]
            if found:
                found[0].data = membrane
                self.viewer_session.remember_membrane(image_layer, found[0])
            else:
                added = self.viewer.add_image(
                    membrane, name=name, colormap="magma", blending="additive", opacity=0.4,
                    visible=False, contrast_limits=(0.0, 1.0), **same_space_as(image_layer),
                )  # fmt: skip
                self.viewer_session.remember_membrane(image_layer, added)
            self.viewer.layers.selection.active = layer
            self._set_status(
                f"adapted to slices {references}: saved {card}; Repropagate and Segment use it"
            )

        if not self._start_job("adapt", job, done, lambda: self._set_running(False)):
            return False
        self._set_running(True)
        return True

    def _set_running(self, running: bool) -> None:
        for name, button in self.buttons.items():
            button.enabled = running if name == "cancel" else not running

    # -- finding errors ---------------------------------------------------------------------
    def find_suspicious(self) -> bool:
        layer, data = self._layer_and_data()
        if layer is None:
            return False
        labels = np.array(data)
        membrane = self.viewer_session.membrane_for(self.image_layer.value, data.shape)
        trusted = self.session.reference_slices | self.session.hand_edited

        def job(progress, cancel):
            items = find_suspicious(
                labels, membrane=membrane, trusted_slices=trusted, progress=progress, cancel=cancel
            )
            return items, suspicion_map(labels, items)

        def done(result) -> None:
            self.suspicious, score = result
            self._next_index = 0
            self._fill_table()
            name = f"{layer.name} suspicion"
            if name in self.viewer.layers:
                self.viewer.layers[name].data = score
            else:
                self.viewer.add_image(
                    score,
                    name=name,
                    **same_space_as(layer),
                    colormap="red",
                    blending="additive",
                    opacity=0.5,
                    contrast_limits=(0, 1),
                )
            self.viewer.layers.selection.active = layer  # keep the paint tools at hand
            self._set_status(f"{len(self.suspicious)} suspicious places; press Next suspicious")

        end = lambda: self._set_running(False)  # noqa: E731
        if self._start_job("find suspicious", job, done, end):
            self._set_running(True)
            return True
        return False

    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.suspicious))
        for row, item in enumerate(self.suspicious):
            for col, value in enumerate((item.obj, item.z, f"{item.score:.2f}", item.reason)):
                self.table.setItem(row, col, QTableWidgetItem(str(value)))
        self.table.resizeColumnsToContents()

    def go_to_suspicious(self, row: int) -> bool:
        if not 0 <= row < len(self.suspicious):
            return False
        item = self.suspicious[row]
        self.table.selectRow(row)
        self.jump_to_object(item.obj, z=item.z)
        self._mark(item)
        self._set_status(
            f"{row + 1}/{len(self.suspicious)}: object {item.obj} at z {item.z}: "
            f"{item.reason} (score {item.score:.2f})"
        )
        return True

    def _mark(self, item) -> None:
        """Ring the object meant (a point layer), leaving the labels layer active."""
        layer, data = self._layer_and_data()
        if layer is None:
            return
        mask = data[item.z] == item.obj
        radius = float(np.sqrt(mask.sum() / np.pi)) if mask.any() else 10.0
        centre = [[item.z, *item.centroid]]
        if MARK_LAYER in self.viewer.layers:
            marker = self.viewer.layers[MARK_LAYER]
            marker.data = centre
            marker.size = 2 * radius + 12
        else:
            marker = self.viewer.add_points(
                centre,
                name=MARK_LAYER,
                ndim=3,
                **same_space_as(layer),
                size=2 * radius + 12,
                face_color="transparent",
                border_color="red",
                border_width=0.08,
            )
        self.viewer.layers.selection.active = layer  # keep the paint tools at hand

    def next_suspicious(self) -> bool:
        if not self.suspicious:
            self._set_status("press Find suspicious first")
            return False
        row = self._next_index % len(self.suspicious)
        self._next_index = row + 1
        return self.go_to_suspicious(row)

    # -- export ------------------------------------------------------------------------------
    def _export_clicked(self) -> None:
        layer = self.labels_layer.value
        if layer is not None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export labels and object table", f"{layer.name}.tif", "TIFF (*.tif)"
            )
            if path:
                self.export(path)

    def _export_zarr_clicked(self) -> None:
        layer = self.labels_layer.value
        if layer is not None:
            path = QFileDialog.getExistingDirectory(self, "Folder for the OME-Zarr export")
            if path:
                self.export_zarr(Path(path) / f"{layer.name}.ome.zarr")

    def export(self, path: str | Path) -> list[Path]:
        """Labels as a Fiji TIFF plus a per-object CSV beside it (the dialog confirmed)."""
        from napari_emseg.io import InputError, write_labels_tiff
        from napari_emseg.proofreading import write_object_csv

        layer, data = self._layer_and_data()
        if layer is None:
            return []
        scale = tuple(float(s) for s in layer.scale)[-3:]
        unit = layer.metadata.get("unit", "nm")
        try:
            tiff = write_labels_tiff(path, data, scale=scale, unit=unit, overwrite=True)
            table = write_object_csv(
                Path(tiff).with_suffix(".csv"), data, scale=scale, overwrite=True
            )
        except (InputError, OSError) as err:
            self._set_status(f"export failed: {' '.join(str(err).split())}")
            return []
        self._set_status(f"exported {tiff.name} and {table.name}")
        return [tiff, table]

    def export_zarr(self, path: str | Path, *, overwrite: bool = False) -> Path | None:
        from napari_emseg.io import InputError
        from napari_emseg.proofreading import write_ome_zarr

        layer, data = self._layer_and_data()
        if layer is None:
            return None
        scale = tuple(float(s) for s in layer.scale)[-3:]
        try:
            image = self.image_layer.value
            image = stack_of(image) if image is not None else None
            if image is not None and image.shape != data.shape:
                image = None  # not the image these labels belong to
            written = write_ome_zarr(
                path, data, scale=scale, image=image, name=layer.name, overwrite=overwrite
            )
        except (InputError, OSError) as err:
            self._set_status(f"export failed: {' '.join(str(err).split())}")
            return None
        self._set_status(f"exported {written}")
        return written
