"""The "Segment and propagate" dock widget: Segment, set reference, Propagate, Export.

A view over the viewer's :class:`~napari_emseg._widgets.viewer_session.ViewerSession`: the
model, device and reference slices chosen here are the ones the Proofread widget uses.
"""

from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton, SpinBox
from napari.layers import Image, Labels
from qtpy.QtWidgets import QFileDialog

from napari_emseg import pipeline
from napari_emseg._widgets.autosave import restore_journal
from napari_emseg._widgets.base import DockWidget
from napari_emseg._widgets.layers import (
    apply_as_undoable_edit,
    choices_of,
    same_space_as,
    stack_of,
)
from napari_emseg._widgets.voxel_field import VoxelSizeField
from napari_emseg.proofreading.journal import pending_journals


class SegmentWidget(DockWidget):
    """Segment an EM stack, correct a reference slice, propagate it through z, export.

    Long work runs in a worker thread (progress in napari's activity dock, Cancel leaves every
    layer as it was). Propagation is applied as one undoable edit of the labels layer; the
    layer stays editable (napari keeps its undo history) and voxels painted while a job runs
    keep the painted value.
    """

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.session = self.viewer_session

        self.image_layer = ComboBox(label="image", choices=choices_of(Image, napari_viewer))
        self.voxel_size = VoxelSizeField(self.session, self.image_layer, self._set_status)
        self.model = ComboBox(
            label="model", choices=pipeline.list_models(), value=self.session.model
        )
        self.device = ComboBox(
            label="device", choices=list(pipeline.DEVICE_CHOICES), value=self.session.device
        )
        self.segment_button = PushButton(text="Segment")
        self.labels_layer = ComboBox(label="labels", choices=choices_of(Labels, napari_viewer))
        self.ref_slice = SpinBox(label="reference slice", min=0, max=0)
        self.set_ref_button = PushButton(text="Set reference slice (current z)")
        self.method = ComboBox(
            label="propagation", choices=pipeline.list_methods(), value=pipeline.default_method()
        )
        self.propagate_button = PushButton(text="Propagate")
        self.export_button = PushButton(text="Export labels...")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.restore_button = PushButton(text="Restore autosaved session", visible=False)
        self.discard_button = PushButton(text="Discard autosaved session", visible=False)
        self.container = Container(
            widgets=[
                self.image_layer,
                self.voxel_size.widget,
                self.model,
                self.device,
                self.segment_button,
                self.labels_layer,
                self.ref_slice,
                self.set_ref_button,
                self.method,
                self.propagate_button,
                self.export_button,
                self.cancel_button,
                self.status,
                self.restore_button,
                self.discard_button,
            ]
        )
        self._scrolling_layout(self.container)

        self.segment_button.changed.connect(self.segment)
        self.set_ref_button.changed.connect(self.set_reference_slice)
        self.propagate_button.changed.connect(self.propagate)
        self.export_button.changed.connect(self._export_clicked)
        self.cancel_button.changed.connect(self.runner.cancel)
        self.model.changed.connect(lambda name: setattr(self.session, "model", name))
        self.device.changed.connect(lambda name: setattr(self.session, "device", name))
        self.labels_layer.changed.connect(self._update_ref_range)
        self.session.references_changed.connect(self._show_references)
        self.session.choice_changed.connect(self._show_choice)
        self.labels_layer.changed.connect(self._watch_labels)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self._refresh_layers)
        napari_viewer.layers.events.removed.connect(self._forget_removed)
        self._setup_autosave()
        self._refresh_layers()
        self._watch_labels(self.labels_layer.value)

    # -- state -------------------------------------------------------------------------------
    def _refresh_layers(self, _event=None) -> None:
        self.image_layer.reset_choices()
        self.labels_layer.reset_choices()
        self.voxel_size.show()
        self._update_ref_range()

    def _update_ref_range(self, _value=None) -> None:
        layer = self.labels_layer.value
        depth = layer.data.shape[0] if layer is not None and layer.data.ndim == 3 else 1
        self.ref_slice.max = max(depth - 1, 0)
        self._show_references(layer)

    def _show_choice(self) -> None:
        """An adapted model (from Proofread's Adapt) joins the choices and becomes the one used."""
        self.model.choices = [*pipeline.list_models(), *self.session.user_models]
        self.model.value = self.session.model
        self.device.value = self.session.device

    def _show_references(self, layer=None) -> None:
        """The reference slice shown is the layer's latest one, whichever widget set it."""
        if layer is not None and layer is self.labels_layer.value:
            references = self.session.references(layer)
            if references and self.ref_slice.value not in references:
                self.ref_slice.value = references[-1]

    def _set_running(self, running: bool) -> None:
        for button in (self.segment_button, self.propagate_button, self.export_button):
            button.enabled = not running
        self.cancel_button.enabled = running

    def _start(self, description: str, job, on_done, on_end=None) -> bool:
        def end() -> None:
            self._set_running(False)
            if on_end is not None:
                on_end()

        started = self._start_job(description, job, on_done, end)
        if started:
            self._set_running(True)
        return started

    # -- autosave --------------------------------------------------------------------------
    def _setup_autosave(self) -> None:
        """Journal edited labels; offer back what a crashed session left."""
        self.autosaver = self.session.autosaver
        self._pending = pending_journals(self.autosaver.root)
        if self._pending:
            self.restore_button.text = f"Restore autosaved session ({len(self._pending)} layers)"
            self.restore_button.visible = self.discard_button.visible = True
            self._set_status("an earlier session ended without closing: restore its labels?")
        self.restore_button.changed.connect(self.restore_autosaved)
        self.discard_button.changed.connect(self.discard_autosaved)
        journals = self.autosaver  # a clean close of the viewer leaves nothing to restore
        self.destroyed.connect(lambda *_: journals.discard_all())

    def _watch_labels(self, layer=None) -> None:
        if layer is not None:
            self.autosaver.watch(layer)

    def _forget_removed(self, event) -> None:
        layer = getattr(event, "value", None)
        if isinstance(layer, Labels):
            self.autosaver.forget(layer)

    def restore_autosaved(self, _value=None) -> list:
        """Add the labels of the crashed session, each change replayed as an undo step."""
        restored = []
        for journal in self._pending:
            layer = restore_journal(self.viewer, journal)
            self.autosaver.watch(layer, journal)
            restored.append(layer)
        self._pending = []
        self.restore_button.visible = self.discard_button.visible = False
        if restored:
            self.labels_layer.value = restored[0]
        self._set_status(f"restored {len(restored)} labels layer(s); Ctrl+Z steps back")
        return restored

    def discard_autosaved(self, _value=None) -> None:
        for journal in self._pending:
            journal.discard()
        self._pending = []
        self.restore_button.visible = self.discard_button.visible = False
        self._set_status("autosaved session discarded")

    # -- actions -----------------------------------------------------------------------------
    def segment(self, _value=None) -> bool:
        """Membrane map and initial 3D labels of the chosen image (new layers)."""
        layer = self.image_layer.value
        if layer is None:
            self._set_status("add an image layer first (File > Open or the sample data)")
            return False
        if layer.rgb:
            self._set_status(f"{layer.name} is RGB; convert it to a single-channel stack")
            return False
        image = stack_of(layer)

        def done(result) -> None:
            space = same_space_as(layer)
            membrane = self.viewer.add_image(
                result.membrane,
                name=f"{layer.name} membrane",
                colormap="magma",
                blending="additive",
                opacity=0.4,
                visible=False,
                contrast_limits=(0.0, 1.0),
                **space,
            )
            labels = self.viewer.add_labels(
                result.labels, name=f"{layer.name} labels", opacity=0.5, **space
            )
            self.session.remember_membrane(layer, membrane)
            self.image_layer.value = layer
            self.labels_layer.value = labels
            ref = result.ref_slice or 0
            self.ref_slice.value = ref
            self.session.add_reference(labels, ref)
            self.session.layer(labels).session.snapshot_reference(result.labels)
            self.viewer.dims.set_current_step(0, ref)  # show the slice the user should correct
            objects = int(np.count_nonzero(np.unique(result.labels)))
            self._set_status(
                f"segmented {layer.name}: {objects} objects; correct slice {ref} (shown) and "
                "press Propagate"
            )

        return self._start("segment", self.session.segment_job(layer, image), done)

    def set_reference_slice(self, _value=None) -> int | None:
        """Use the z currently shown in the viewer as the reference slice."""
        layer = self.labels_layer.value
        if layer is None or layer.data.ndim != 3:
            self._set_status("choose a 3D labels layer first")
            return None
        z = int(round(float(layer.world_to_data(self.viewer.dims.point)[0])))
        z = min(max(z, 0), layer.data.shape[0] - 1)
        self.ref_slice.value = z
        self._set_status(f"reference slice: {z}")
        return z

    def propagate(self, _value=None) -> bool:
        """Propagate the reference slice up and down (one undoable edit).

        Objects locked and slices painted by hand in the Proofread widget are left as they are.
        """
        labels_layer, image_layer = self.labels_layer.value, self.image_layer.value
        if labels_layer is None or image_layer is None:
            self._set_status("choose an image and a labels layer first")
            return False
        image, labels = stack_of(image_layer), np.array(labels_layer.data)
        if image.shape != labels.shape or labels.ndim != 3:
            self._set_status(
                f"labels {labels.shape} and image {image.shape} must be the same 3D shape"
            )
            return False
        ref = int(self.ref_slice.value)
        layer_session = self.session.layer(labels_layer)
        session = layer_session.session
        frozen = session.frozen_slices() - {ref}
        # After a propagation from this slice, only what the user corrected there since is
        # propagated again (the objects edited and those they took voxels from).
        objects = session.changed_objects(labels) if session.has_snapshot(ref) else None
        if objects is not None and not objects:
            self._set_status(f"nothing was corrected on slice {ref} since the last propagation")
            return False
        job = self.session.repropagate_job(
            image_layer,
            labels_layer,
            labels,
            references=[ref],
            objects=objects,
            frozen=frozen,
            method=self.method.value,
        )

        def done(result) -> None:
            with layer_session.tool_edit():
                changed = apply_as_undoable_edit(labels_layer, result.labels, since=labels)
            self.session.add_reference(labels_layer, ref)
            session.snapshot_reference(np.asarray(labels_layer.data))
            kept = sorted(frozen)
            which = "all objects" if objects is None else f"objects {sorted(objects)}"
            self._set_status(
                f"propagated {which} from slice {ref}: {changed} voxels changed "
                "(Ctrl+Z undoes it)" + (f"; hand-edited slices kept: {kept}" if kept else "")
            )

        return self._start("propagate", job, done)

    def _export_clicked(self, _value=None) -> None:
        layer = self.labels_layer.value
        if layer is None:
            self._set_status("choose a labels layer to export")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export labels", f"{layer.name}.tif", "TIFF (*.tif *.tiff)"
        )
        if path:
            self.export_labels(path)

    def export_labels(self, path: str | Path) -> Path | None:
        """Write the chosen labels layer as a Fiji-compatible TIFF (the save dialog confirmed
        any overwrite)."""
        from napari_emseg.io import InputError, write_labels_tiff

        layer = self.labels_layer.value
        if layer is None:
            self._set_status("choose a labels layer to export")
            return None
        data = np.asarray(layer.data)
        scale = tuple(float(s) for s in layer.scale)[-3:]
        try:
            written = write_labels_tiff(
                path, data, scale=scale, unit=layer.metadata.get("unit", "nm"), overwrite=True
            )
        except (InputError, OSError) as err:
            self._set_status(f"export failed: {' '.join(str(err).split())}")
            return None
        self._set_status(f"exported {layer.name} to {written}")
        return written
