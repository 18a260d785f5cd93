"""The "Proofread" dock widget: object tools, targeted repropagation, the worklist, Adapt.

Every edit goes through napari's undoable ``data_setitem`` (Ctrl+Z undoes a whole merge, split
or repropagation); locked objects (outlined in white) and slices edited by hand are never
changed by a repropagation; long work runs in the viewer's one worker with progress and Cancel.
"""

from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, SpinBox
from napari.layers import Image, Labels, Points
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog

from napari_emseg._widgets.base import DockWidget, camera_of, row, show_layer
from napari_emseg._widgets.layers import (
    apply_as_undoable_edit,
    choices_of,
    helper_space,
    same_space_as,
    stack_indices,
    stack_of,
)
from napari_emseg._widgets.overlays import show_locked
from napari_emseg._widgets.segment_widget import describe_run, tracing_combo
from napari_emseg._widgets.shortcuts import bind_shortcuts
from napari_emseg._widgets.viewer_session import LayerSession
from napari_emseg._widgets.worklist import Worklist
from napari_emseg.proofreading import (
    ProofreadingSession,
    delete_object,
    merge_objects,
    next_free_id,
    object_extent,
    split_object,
)

SEED_LAYER = "split seeds"


def adapted_card_path(image_layer) -> Path:
    """Where Adapt saves its model card: beside the image's file, else in the user's cache."""
    import time

    source = getattr(getattr(image_layer, "source", None), "path", None)
    folder = Path(source).parent if source else Path.home() / ".cache" / "napari-emseg" / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{image_layer.name}-adapted-{time.strftime('%Y%m%d-%H%M%S')}.json"


class ProofreadWidget(DockWidget):
    """Correct a segmentation object by object and work through where it is wrong."""

    grows = True  # spare height shows more of the worklist

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self._watched: Labels | None = None
        self._layer_session: LayerSession | None = None

        self.labels_layer = ComboBox(choices=choices_of(Labels, napari_viewer))
        self.labels_layer.tooltip = "the labels to proofread (the same in both widgets)"
        self.image_layer = ComboBox(choices=choices_of(Image, napari_viewer))
        self.image_layer.tooltip = "the EM image the labels belong to"
        self.object = SpinBox(min=0, max=2**31 - 1)
        self.object.tooltip = "the selected object (napari's label)"
        self.other = SpinBox(min=0, max=2**31 - 1)
        self.other.tooltip = "the object to merge into the selected one"
        self.this_slice_only = CheckBox(text="this slice only", value=False)
        self.this_slice_only.tooltip = "merge and delete in the current slice only"
        self.references = Label(label="references", value="none")
        self.references.tooltip = "reference slices, locked objects, worklist places done"
        self.references.native.setWordWrap(True)
        self.references.native.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        self.tracing = tracing_combo(self.viewer_session)
        self.calibrate = CheckBox(text="on the reference", value=self.viewer_session.calibrate)
        self.calibrate.tooltip = (
            "choose the thresholds that reproduce the corrected reference slice best "
            "(a dense reference; the choice and its score show in the status)"
        )
        self.calibrate.changed.connect(
            lambda on: setattr(self.viewer_session, "calibrate", bool(on))
        )
        self.buttons = {
            name: PushButton(text=text)
            for name, text in [
                ("new", "New id"),
                ("jump", "Jump"),
                ("extent", "3D"),
                ("lock", "Lock"),
                ("delete", "Delete"),
                ("merge", "Merge"),
                ("seeds", "Seeds"),
                ("split", "Split"),
                ("reference", "Add reference"),
                ("repropagate", "Edited"),
                ("repropagate_one", "Selected"),
                ("adapt", "Adapt"),
                ("export", "TIFF+CSV..."),
                ("export_zarr", "OME-Zarr..."),
            ]
        }
        tips = {
            "new": "select a new, unused id to paint (Shift+N)",
            "jump": "centre the selected object (Shift+J)",
            "extent": "show the selected object alone, with its 3D extent (Shift+X)",
            "lock": "lock / unlock the selected object: no edit or propagation changes it",
            "delete": "delete the selected object (Shift+D)",
            "merge": "merge the object on the left into the selected one (Shift+M: under cursor)",
            "seeds": "add a points layer: click one seed per part, then Split",
            "split": "split the selected object at the seeds (Shift+S)",
            "reference": "make the current slice a reference slice",
            "repropagate": "carry the objects edited on the reference slices through z (Shift+R)",
            "repropagate_one": "carry the selected object from the reference slices through z",
            "adapt": "fine-tune the membrane model in use on the corrected reference slices; "
            "switches only if it does better on corrections it did not train on",
            "export": "labels as a Fiji TIFF and a per-object CSV",
            "export_zarr": "labels and image as OME-Zarr",
        }
        for name, tip in tips.items():
            self.buttons[name].tooltip = tip
        self.buttons["lock"].native.setCheckable(True)
        self.z_first = SpinBox(min=0, max=0)
        self.z_last = SpinBox(min=0, max=0)
        self.z_first.tooltip = self.z_last.tooltip = "repropagate within these slices"
        self.worklist = Worklist(self)
        self.table = self.worklist.table

        b = self.buttons
        layers = row(self.labels_layer, self.image_layer)
        layers.label = "labels"
        selected = row(self.object, b["new"], b["jump"], b["extent"])
        selected.label = "object"
        merge = row(b["lock"], b["delete"], self.other, b["merge"])
        merge.label = "edit"
        split = row(b["seeds"], b["split"], self.this_slice_only)
        split.label = "split"
        reference = row(b["reference"], self.z_first, self.z_last)
        reference.label = "reference"
        calibration = row(self.calibrate)
        calibration.label = "calibrate"
        repropagate = row(b["repropagate"], b["repropagate_one"], self.tracing)
        repropagate.label = "propagate"
        worklist = row(*self.worklist.buttons)
        worklist.label = "worklist"
        self.container = Container(
            widgets=[
                layers,
                self.references,
                selected,
                merge,
                split,
                reference,
                calibration,
                repropagate,
                worklist,
            ]
        )
        tail = Container(
            widgets=[
                row(b["adapt"], b["export"], b["export_zarr"]),
                row(self.cancel_button),
                self.status,
            ],
            labels=False,
        )
        tail.margins = (4, 0, 4, 2)
        self._scrolling_layout(self.container, self.table, tail.native, grow=self.table)
        self.actions = [*b.values(), *self.worklist.buttons]

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
            "export": self._export_clicked,
            "export_zarr": self._export_zarr_clicked,
        }
        for name, action in actions.items():
            b[name].changed.connect(lambda _value=None, run=action: run())
        self.labels_layer.changed.connect(self._labels_chosen)
        self.image_layer.changed.connect(self._image_chosen)
        self.object.changed.connect(self._object_changed)
        session = self.viewer_session
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            self._connect(event, self._refresh_layers)
        self._connect(session.references_changed, self._show_references)
        self._connect(session.layers_chosen, self._show_layers)
        self._connect(session.choice_changed, self._show_choice)
        bind_shortcuts(napari_viewer)
        session.proofread_widget = self
        self._refresh_layers()

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def session(self) -> ProofreadingSession:
        """The chosen labels layer's session, shared with the Segment widget."""
        if self._layer_session is None:
            return ProofreadingSession()
        return self._layer_session.session

    @property
    def suspicious(self) -> list:
        """The worklist's places (one per object, worth most first)."""
        return self.worklist.places

    def _refresh_layers(self, _event=None) -> None:
        self.labels_layer.reset_choices()
        self.image_layer.reset_choices()
        self._show_layers()

    def _labels_chosen(self, layer=None) -> None:
        if layer is not None:
            self.viewer_session.choose(labels=layer)
        self._watch(self.labels_layer.value)

    def _image_chosen(self, layer=None) -> None:
        if layer is not None:
            self.viewer_session.choose(image=layer)

    def _show_layers(self) -> None:
        session = self.viewer_session
        show_layer(self.labels_layer, session.labels)
        show_layer(self.image_layer, session.image)
        self._watch(self.labels_layer.value)

    def _show_choice(self) -> None:
        self.tracing.value = self.viewer_session.tracing

    def _watch(self, layer=None) -> None:
        """Follow the chosen labels layer: its selected label and its hand edits."""
        if layer is self._watched:
            return
        if self._watched is not None:
            self._watched.events.selected_label.disconnect(self._on_selected_label)
        self._watched = layer
        self._layer_session = None if layer is None else self.viewer_session.layer(layer)
        self.worklist.places, self.worklist.index = [], None
        self.table.setRowCount(0)
        if layer is None:
            return
        layer.events.selected_label.connect(self._on_selected_label)
        self._connections.append((layer.events.selected_label, self._on_selected_label))
        self._show_references(layer)
        depth = stack_of(layer).shape[0]
        for box in (self.z_first, self.z_last):
            box.max = depth - 1
        self.z_last.value = depth - 1
        self.object.value = int(layer.selected_label)

    def _show_references(self, layer=None) -> None:
        if layer is None or layer is not self._watched:
            return
        session = self.viewer_session.layer(layer)
        references = self.viewer_session.references(layer)
        parts = [", ".join(map(str, references)) or "none"]
        locked = sorted(session.session.locked)
        parts.append(f"locked: {', '.join(map(str, locked)) or 'none'}")
        if session.done:
            parts.append(f"done: {len(session.done)}")
        self.references.value = " · ".join(parts)
        self._show_lock_state()

    def _show_lock_state(self) -> None:
        """The Lock button says and shows whether the selected object is locked."""
        obj = int(self.object.value)
        locked = obj != 0 and obj in self.session.locked
        button = self.buttons["lock"]
        button.native.setChecked(locked)
        button.text = "Unlock" if locked else "Lock"

    def _on_selected_label(self, _event=None) -> None:
        if self._watched is not None and self.object.value != self._watched.selected_label:
            self.object.value = int(self._watched.selected_label)

    def _object_changed(self, value: int) -> None:
        layer = self.labels_layer.value
        if layer is not None and layer.selected_label != value:
            layer.selected_label = int(value)
        self._show_lock_state()

    def _layer_and_data(self):
        """The chosen labels layer and its data as a (Z, Y, X) stack."""
        layer = self.labels_layer.value
        if layer is None or layer.ndim not in (2, 3):
            self._set_status("choose a 2D or 3D labels layer first")
            return None, None
        return layer, stack_of(layer)

    def _current_z(self, layer) -> int:
        if layer.ndim == 2:
            return 0
        z = int(round(float(layer.world_to_data(self.viewer.dims.point)[0])))
        return min(max(z, 0), layer.data.shape[0] - 1)

    def _apply_diff(self, layer, diff, message: str) -> None:
        if diff.size:
            with self.viewer_session.layer(layer).tool_edit():
                values = diff.values.astype(layer.data.dtype)
                layer.data_setitem(stack_indices(layer, diff.indices), values)
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
        centre = list(object_extent(data, obj).centroid)
        if z is not None:
            ys, xs = np.nonzero(data[z] == obj)
            if ys.size:
                centre = [z, ys.mean(), xs.mean()]
        world = layer.data_to_world(centre[-layer.ndim :])
        if layer.ndim == 3:
            self.viewer.dims.set_point(0, float(world[0]))
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
        """Lock or unlock the selected object; locked objects are outlined in white."""
        layer = self.labels_layer.value
        obj = int(self.object.value)
        if layer is None or obj == 0:
            self._show_lock_state()
            self._set_status("select an object to lock (click it with the colour picker)")
            return False
        locked = self.viewer_session.toggle_lock(layer, obj)
        show_locked(self.viewer, layer, self.session.locked)
        self._set_status(
            f"object {obj} {'locked: no edit or propagation changes it' if locked else 'unlocked'}"
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
                ndim=3, name=SEED_LAYER, **helper_space(layer), size=8, face_color="yellow"
            )
        self.viewer.layers.selection.active = seeds
        seeds.mode = "add"
        self._set_status("click one seed per part of the object, then Split")
        return seeds

    def split(self) -> bool:
        layer, data = self._layer_and_data()
        obj = int(self.object.value)
        if layer is None or SEED_LAYER not in self.viewer.layers or self._refuse_locked(obj):
            self._set_status("place split seeds first") if layer is not None else None
            return False
        points = self.viewer.layers[SEED_LAYER]
        seeds = []
        for point in points.data:
            coords = layer.world_to_data(points.data_to_world(point))
            seeds.append(tuple(int(round(c)) for c in (0, *coords)[-3:]))
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
    def add_reference(self, z: int | None = None) -> int | None:
        layer, data = self._layer_and_data()
        if layer is None:
            return None
        z = self._current_z(layer) if z is None else int(z)
        self.viewer_session.add_reference(layer, z)
        self.session.snapshot_reference(data)
        self._set_status(f"slice {z} is a reference: correct it, then repropagate")
        return z

    def _ensure_reference(self, layer) -> None:
        """No reference yet: the slice painted last, else the one shown."""
        if not self.session.reference_slices:
            last = self.viewer_session.layer(layer).last_edited
            self.viewer_session.add_reference(
                layer, self._current_z(layer) if last is None else last
            )

    def repropagate_edited(self) -> bool:
        layer, data = self._layer_and_data()
        if layer is None:
            return False
        self._ensure_reference(layer)
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
        self._ensure_reference(layer)
        return self._repropagate(layer, data, {obj})

    def _repropagate(self, layer, data, objects: set[int]) -> bool:
        image_layer = self.image_layer.value
        if image_layer is None or stack_of(image_layer).shape != data.shape:
            self._set_status("choose the image the labels belong to (same shape)")
            return False
        if data.shape[0] == 1:
            self._set_status("a single slice: there is nothing to propagate through z")
            return False
        labels = np.array(data)
        session = self.session
        refs = sorted(session.reference_slices)
        z_range = (int(self.z_first.value), int(self.z_last.value))
        if not z_range[0] <= min(refs) <= z_range[1]:
            self._set_status(f"z range {z_range} must contain the reference slices")
            return False
        job = self.viewer_session.repropagate_job(
            image_layer, layer, labels, references=refs, objects=objects, z_range=z_range
        )

        def done(result, notes) -> None:
            self.viewer_session.remember_estimate(image_layer, result)
            with self.viewer_session.layer(layer).tool_edit():
                changed = apply_as_undoable_edit(layer, result.labels, since=labels)
            session.snapshot_reference(stack_of(layer))
            if session.locked:
                show_locked(self.viewer, layer, session.locked)
            which = f"slice{'s' * (len(refs) > 1)} {', '.join(map(str, refs))}"
            message = (
                f"repropagated objects {sorted(objects)} from {which} ({describe_run(result)}): "
                f"{changed:,} voxels changed (Ctrl+Z undoes it)"
            )
            self._set_status(self._with_notes(message, [*getattr(result, "notes", []), *notes]))

        return self._start_job("repropagate", job, done)

    def adapt_to_corrections(self) -> bool:
        """Fine-tune the membrane model in use on the reference slices; switch to it only when
        it segments corrections it did not train on better."""
        from napari_emseg.models.cards import get_card

        layer, data = self._layer_and_data()
        image_layer = self.image_layer.value
        if layer is None or image_layer is None or stack_of(image_layer).shape != data.shape:
            self._set_status("choose the image and its labels (same shape) first")
            return False
        model = self.viewer_session.model
        if not get_card(self.viewer_session.engine_model).needs_torch:
            self._set_status(
                f"{model} is classical: Adapt fine-tunes a network; choose one in the Segment "
                "widget's model list"
            )
            return False
        self._ensure_reference(layer)
        references = [z for z in sorted(self.session.reference_slices) if data[z].any()]
        if not references:
            self._set_status("the reference slices hold no labels: correct one first")
            return False
        out = adapted_card_path(image_layer)
        job = self.viewer_session.adapt_job(image_layer, np.array(data), references, out)

        def done(outcome, notes) -> None:
            result, membrane = outcome
            if not result.kept:
                for path in (result.card, Path(result.card).with_suffix(".pt")):
                    Path(path).unlink(missing_ok=True)  # a worse model is not kept around
                self._set_status(self._with_notes(result.message, notes))
                return
            self.viewer_session.use_model(result.card)
            self._replace_membrane(image_layer, membrane)
            # The map changed: Repropagate edited carries every object of the references.
            for z in references:
                self.session.remove_reference(z)
                self.viewer_session.add_reference(layer, z)
            self.viewer.layers.selection.active = layer
            message = (
                f"{result.message}; saved {Path(result.card).name}. Repropagate edited now "
                "carries every object of the reference slices with the new map"
            )
            self._set_status(self._with_notes(message, notes))

        return self._start_job("adapt", job, done)

    def _replace_membrane(self, image_layer, membrane: np.ndarray) -> None:
        name = f"{image_layer.name} membrane"
        found = [layer for layer in self.viewer.layers if layer.name == name]
        if found:
            found[0].data = membrane
            self.viewer_session.remember_membrane(image_layer, found[0])
            return
        added = self.viewer.add_image(
            membrane, name=name, colormap="magma", blending="additive", opacity=0.4,
            visible=False, contrast_limits=(0.0, 1.0), **same_space_as(image_layer),
        )  # fmt: skip
        self.viewer_session.remember_membrane(image_layer, added)

    # -- the worklist (keys and the npe2 commands call these) ---------------------------------
    def find_suspicious(self) -> bool:
        return self.worklist.find()

    def next_suspicious(self) -> bool:
        return self.worklist.next()

    def previous_suspicious(self) -> bool:
        return self.worklist.previous()

    def mark_done(self) -> bool:
        done = self.worklist.mark_done()
        if self._watched is not None:
            self._show_references(self._watched)
        return done

    def go_to_suspicious(self, index: int) -> bool:
        return self.worklist.go(index)

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
        scale = tuple(float(s) for s in (1.0, *layer.scale))[-3:]
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
        scale = tuple(float(s) for s in (1.0, *layer.scale))[-3:]
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
