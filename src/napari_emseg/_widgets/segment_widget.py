"""The "Segment and propagate" dock widget: Segment, choose the reference, Propagate, Export.

A view over the viewer's :class:`~napari_emseg._widgets.viewer_session.ViewerSession`: the
layers, model, device, tracing mode and reference slices chosen here are the ones the
Proofread widget uses. The reference slice follows the slice the user painted last.
"""

from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton, SpinBox
from napari.layers import Image, Labels
from qtpy.QtWidgets import QFileDialog

from napari_emseg import pipeline
from napari_emseg._widgets.autosave import restore_journal
from napari_emseg._widgets.base import DockWidget, row, show_layer
from napari_emseg._widgets.layers import (
    apply_as_undoable_edit,
    choices_of,
    same_space_as,
    stack_of,
)
from napari_emseg._widgets.viewer_session import AUTO_MODEL
from napari_emseg._widgets.voxel_field import VoxelSizeField
from napari_emseg.proofreading.journal import pending_journals

TRACING_CHOICES = [("Auto", "auto"), ("Sparse", "sparse"), ("Dense", "dense")]


def tracing_combo(session) -> ComboBox:
    """The tracing-mode choice, bound to the session (both widgets show the same)."""
    combo = ComboBox(label="tracing", choices=TRACING_CHOICES, value=session.tracing)
    combo.tooltip = (
        "Sparse: only the objects painted on the reference are carried (a dot or scribble "
        "grows to its cell first) and unlabelled area stays empty. Dense: every object of "
        "the reference is carried and new ones fill the rest. Auto: sparse when less than "
        "half the reference slice is labelled."
    )
    combo.changed.connect(lambda mode: setattr(session, "tracing", mode))
    return combo


# The method choice that lets the data decide (pipeline.default_method).
AUTO_METHOD = "auto"


def describe_run(result) -> str:
    """Which tracing mode ran, for the status line."""
    if getattr(result, "sparse", False):
        return "sparse tracing: only the painted objects, the rest left empty"
    return "dense: every object of the reference, new ones fill the rest"


class SegmentWidget(DockWidget):
    """Segment an EM stack, correct a reference slice, propagate it through z, export.

    Long work runs in a worker thread (progress in the status line and napari's activity
    dock; Cancel leaves every layer as it was). Propagation is applied as one undoable edit of
    the labels layer; the layer stays editable (napari keeps its undo history) and voxels
    painted while a job runs keep the painted value.
    """

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.session = self.viewer_session

        self.image_layer = ComboBox(label="image", choices=choices_of(Image, napari_viewer))
        self.voxel_size = VoxelSizeField(
            self.session, self.image_layer, self._set_status, connect=self._connect
        )
        self.model = ComboBox(
            label="model", choices=self._model_choices(), value=self.session.model
        )
        self.model.tooltip = (
            "membrane model: auto = the default for the stack's pixel size (from the model "
            "registry; adapted models join)"
        )
        self.device = ComboBox(choices=list(pipeline.DEVICE_CHOICES), value=self.session.device)
        self.device.tooltip = "where networks run: auto = CUDA, then Apple MPS, then the CPU"
        self.segment_button = PushButton(text="Segment")
        self.labels_layer = ComboBox(label="labels", choices=choices_of(Labels, napari_viewer))
        self.ref_slice = SpinBox(min=0, max=0)
        self.ref_slice.tooltip = "the slice to propagate from: follows the slice you paint"
        self.set_ref_button = PushButton(text="Use current z")
        self.tracing = tracing_combo(self.session)
        self.method = ComboBox(choices=[AUTO_METHOD, *pipeline.list_methods()], value=AUTO_METHOD)
        self.method.tooltip = (
            "the propagation method; auto: agglomeration for near-isotropic voxels (FIB-SEM), "
            "the consistent ConvLSTM for thick sections"
        )
        self.propagate_button = PushButton(text="Propagate")
        self.export_button = PushButton(text="Export...")
        self.export_button.tooltip = "write the labels as a Fiji-compatible TIFF"
        self.restore_button = PushButton(text="Restore autosaved session", visible=False)
        self.discard_button = PushButton(text="Discard autosaved session", visible=False)
        run_row = row(self.device, self.segment_button)
        run_row.label = "device"
        ref_row = row(self.ref_slice, self.set_ref_button)
        ref_row.label = "reference"
        tracing_row = row(self.tracing, self.method)
        tracing_row.label = "tracing"
        self.container = Container(
            widgets=[
                self.image_layer,
                self.voxel_size.widget,
                self.model,
                run_row,
                self.labels_layer,
                ref_row,
                tracing_row,
                row(self.propagate_button, self.export_button, self.cancel_button),
                self.status,
                self.restore_button,
                self.discard_button,
            ]
        )
        self._scrolling_layout(self.container)
        self.actions = [self.segment_button, self.propagate_button, self.export_button]

        self.segment_button.changed.connect(self.segment)
        self.set_ref_button.changed.connect(self.set_reference_slice)
        self.propagate_button.changed.connect(self.propagate)
        self.export_button.changed.connect(self._export_clicked)
        self.model.changed.connect(lambda name: setattr(self.session, "model", name))
        self.device.changed.connect(lambda name: setattr(self.session, "device", name))
        self.labels_layer.changed.connect(self._labels_chosen)
        self.image_layer.changed.connect(self._image_chosen)
        self._connect(self.session.references_changed, self._show_references)
        self._connect(self.session.choice_changed, self._show_choice)
        self._connect(self.session.layers_chosen, self._show_layers)
        self._connect(self.session.edited, self._follow_edit)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            self._connect(event, self._refresh_layers)
        self._connect(napari_viewer.layers.events.removed, self._forget_removed)
        self._setup_autosave()
        self._refresh_layers()
        self._labels_chosen(self.labels_layer.value)
        self._image_chosen(self.image_layer.value)

    # -- state -------------------------------------------------------------------------------
    def _model_choices(self) -> list[str]:
        return [AUTO_MODEL, *pipeline.list_models(), *self.session.user_models]

    def _refresh_layers(self, _event=None) -> None:
        self.image_layer.reset_choices()
        self.labels_layer.reset_choices()
        self.voxel_size.show()
        self._show_layers()

    def _labels_chosen(self, layer=None) -> None:
        if layer is not None:
            self.session.choose(labels=layer)
            self.autosaver.watch(layer)
        self._update_ref_range()

    def _image_chosen(self, layer=None) -> None:
        if layer is not None:
            self.session.choose(image=layer)

    def _show_layers(self) -> None:
        """Show the session's layers: both widgets work on the same labels and image."""
        show_layer(self.labels_layer, self.session.labels)
        show_layer(self.image_layer, self.session.image)
        self._update_ref_range()

    def _update_ref_range(self, _value=None) -> None:
        layer = self.labels_layer.value
        depth = stack_of(layer).shape[0] if layer is not None else 1
        self.ref_slice.max = max(depth - 1, 0)
        if layer is not None:
            last = self.session.layer(layer).last_edited
            if last is not None and last < depth:
                self.ref_slice.value = last
        self._show_references(layer)

    def _show_choice(self) -> None:
        """Show the session's model, device and tracing mode (Adapt may switch the model)."""
        self.model.choices = self._model_choices()
        self.model.value = self.session.model
        self.device.value = self.session.device
        self.tracing.value = self.session.tracing

    def _show_references(self, layer=None) -> None:
        """The reference shown is the one set last, whichever widget set it."""
        if layer is not None and layer is self.labels_layer.value:
            references = self.session.references(layer)
            last = self.session.layer(layer).last_edited
            if references and last is None and self.ref_slice.value not in references:
                self.ref_slice.value = references[-1]

    def _follow_edit(self, layer, z: int) -> None:
        """The reference slice follows the slice the user painted last."""
        if layer is self.labels_layer.value and self.ref_slice.value != z:
            self.ref_slice.value = z
            self._set_status(f"reference slice {z}: the slice you painted last")

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
        if layer.rgb or stack_of(layer).ndim != 3:
            self._set_status(
                f"{layer.name} is not a grey-level image or stack (shape "
                f"{tuple(np.shape(layer.data))}): open a single-channel (Z, Y, X) stack"
            )
            return False
        image = stack_of(layer)

        def done(result, notes) -> None:
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
            self.session.remember_estimate(layer, result)
            self.session.choose(labels=labels, image=layer)
            ref = result.ref_slice or 0
            self.ref_slice.value = ref
            self.session.add_reference(labels, ref)
            self.session.layer(labels).session.snapshot_reference(result.labels)
            self.viewer.dims.set_current_step(0, ref)  # show the slice the user should correct
            objects = int(np.count_nonzero(np.unique(result.labels)))
            if image.shape[0] == 1:
                advice = "a single slice: correct it in place (nothing to propagate)"
            else:
                advice = f"correct slice {ref} (shown) and press Propagate"
            self._set_status(
                self._with_notes(f"segmented {layer.name}: {objects} objects; {advice}", notes)
            )

        return self._start_job("segment", self.session.segment_job(layer, image), done)

    def set_reference_slice(self, _value=None) -> int | None:
        """Use the z currently shown in the viewer as the reference slice."""
        layer = self.labels_layer.value
        if layer is None:
            self._set_status("choose a labels layer first")
            return None
        depth = stack_of(layer).shape[0]
        z = 0
        if layer.ndim == 3:
            z = int(round(float(layer.world_to_data(self.viewer.dims.point)[0])))
        z = min(max(z, 0), depth - 1)
        self.ref_slice.value = z
        self._set_status(f"reference slice: {z}")
        return z

    def propagate(self, _value=None) -> bool:
        """Propagate the reference slice up and down (one undoable edit).

        Objects locked and slices painted by hand in the Proofread widget are left as they are.
        Refused, with a message, when the reference slice holds nothing to propagate.
        """
        labels_layer, image_layer = self.labels_layer.value, self.image_layer.value
        if labels_layer is None or image_layer is None:
            self._set_status("choose an image and a labels layer first")
            return False
        image, labels = stack_of(image_layer), np.array(stack_of(labels_layer))
        if image.shape != labels.shape or labels.ndim != 3:
            self._set_status(
                f"labels {labels.shape} and image {image.shape} must be the same 3D shape"
            )
            return False
        if labels.shape[0] == 1:
            self._set_status("a single slice: there is nothing to propagate through z")
            return False
        ref = int(self.ref_slice.value)
        layer_session = self.session.layer(labels_layer)
        session = layer_session.session
        if not labels[ref].any():
            last = layer_session.last_edited
            hint = f" (you painted slice {last} last)" if last not in (None, ref) else ""
            self._set_status(
                f"slice {ref} holds no object to propagate{hint}: paint the objects on a "
                "slice and propagate from it (the reference follows the slice you paint)"
            )
            return False
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
            method=None if self.method.value == AUTO_METHOD else self.method.value,
            interactive=False,  # the whole propagation: as propagate and the CLI run it
        )

        def done(result, notes) -> None:
            self.session.remember_estimate(image_layer, result)
            with layer_session.tool_edit():
                changed = apply_as_undoable_edit(labels_layer, result.labels, since=labels)
            self.session.add_reference(labels_layer, ref)
            session.snapshot_reference(stack_of(labels_layer))
            kept = sorted(frozen)
            carried = int(np.count_nonzero(np.unique(result.labels[ref])))
            which = (
                f"the {carried} objects of slice {ref}"
                if objects is None
                else f"objects {sorted(objects)} from slice {ref}"
            )
            message = (
                f"propagated {which} ({describe_run(result)}): {changed:,} voxels changed "
                "(Ctrl+Z undoes it)" + (f"; hand-edited slices kept: {kept}" if kept else "")
            )
            self._set_status(self._with_notes(message, [*getattr(result, "notes", []), *notes]))

        return self._start_job("propagate", job, done)

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
        scale = tuple(float(s) for s in (1.0, *layer.scale))[-3:]
        try:
            written = write_labels_tiff(
                path, data, scale=scale, unit=layer.metadata.get("unit", "nm"), overwrite=True
            )
        except (InputError, OSError) as err:
            self._set_status(f"export failed: {' '.join(str(err).split())}")
            return None
        self._set_status(f"exported {layer.name} to {written}")
        return written
