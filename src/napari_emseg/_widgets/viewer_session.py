"""One session per napari viewer: the state both dock widgets show and change.

It owns the membrane model and device the user chose, the proofreading session of every labels
layer (reference slices, locked objects, slices painted by hand), the membrane map Segment made
for each image, and autosave. The widgets are views over it: a choice made in one is what the
other uses. Engine work goes through :mod:`napari_emseg.pipeline` only. Nothing is global: a
session lives as long as its viewer.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from weakref import WeakKeyDictionary

import numpy as np
from napari.layers import Image, Labels
from psygnal import Signal

from napari_emseg import pipeline
from napari_emseg._progress import stage_progress
from napari_emseg._widgets.autosave import Autosaver
from napari_emseg.proofreading import ProofreadingSession


def painted_slices(atoms) -> set[int]:
    """The z indices a napari paint event touched (its history atoms)."""
    slices: set[int] = set()
    for atom in atoms or ():
        key = getattr(atom, "slice_key", None)
        if key is not None:
            first = key[0]
            if isinstance(first, slice):
                slices.update(range(first.start or 0, first.stop))
            else:
                slices.add(int(first))
        else:
            slices.update(int(z) for z in np.unique(atom[0][0]))
    return slices


class LayerSession:
    """A labels layer's :class:`ProofreadingSession`, fed with the slices painted by hand."""

    def __init__(self, layer: Labels):
        self.session = ProofreadingSession()
        self._quiet = 0
        layer.events.paint.connect(self._on_paint)

    def _on_paint(self, event) -> None:
        if not self._quiet and getattr(event.source, "ndim", 3) == 3:
            self.session.mark_edited(painted_slices(getattr(event, "value", None)))

    @contextmanager
    def tool_edit(self):
        """Edits made by our tools and propagations are not hand edits of whole slices."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1


class ViewerSession:
    """The per-viewer state behind the Segment and Proofread widgets."""

    #: Emitted with the labels layer whose reference slices changed.
    references_changed = Signal(object)
    #: Emitted when the model or device choice changes.
    choice_changed = Signal()
    #: Emitted with the image layer whose voxel size was typed.
    voxel_size_changed = Signal(object)

    def __init__(self, viewer):
        self.viewer = viewer
        self._model = pipeline.list_models()[0]
        self._device = "auto"
        self._layers: WeakKeyDictionary[Labels, LayerSession] = WeakKeyDictionary()
        self._membranes: WeakKeyDictionary[Image, Image] = WeakKeyDictionary()
        self._voxel_sizes: WeakKeyDictionary[Image, tuple | None] = WeakKeyDictionary()
        self.autosaver = Autosaver()
        self._proofread = None
        self.user_models: list[str] = []  # cards made by Adapt in this session
        self.adapt_steps: int | None = None  # None: adapt's own default

    @property
    def proofread_widget(self):
        """The viewer's Proofread widget, while it is open (its shortcuts act on it)."""
        return self._proofread() if self._proofread is not None else None

    @proofread_widget.setter
    def proofread_widget(self, widget) -> None:
        self._proofread = None if widget is None else weakref.ref(widget)

    # -- choices --------------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return self._model

    @model.setter
    def model(self, name: str) -> None:
        if name != self._model:
            self._model = name
            self.choice_changed.emit()

    @property
    def device(self) -> str:
        return self._device

    @device.setter
    def device(self, name: str) -> None:
        if name != self._device:
            self._device = name
            self.choice_changed.emit()

    # -- layers -------------------------------------------------------------------------------
    def layer(self, labels: Labels) -> LayerSession:
        """The proofreading session of a labels layer, made on first use."""
        if labels not in self._layers:
            self._layers[labels] = LayerSession(labels)
        return self._layers[labels]

    def add_reference(self, labels: Labels, z: int) -> None:
        self.layer(labels).session.add_reference(z)
        self.references_changed.emit(labels)

    def references(self, labels: Labels | None) -> list[int]:
        return [] if labels is None else sorted(self.layer(labels).session.reference_slices)

    def remember_membrane(self, image: Image, membrane: Image) -> None:
        self._membranes[image] = membrane

    def membrane_for(self, image: Image | None, shape: tuple[int, ...]) -> np.ndarray | None:
        """The membrane map Segment made for this image (or a layer named ``<image> membrane``),
        if it is still there and fits."""
        if image is None:
            return None
        membrane = self._membranes.get(image)
        if membrane is None or membrane not in self.viewer.layers:
            name = f"{image.name} membrane"
            by_name = [layer for layer in self.viewer.layers if layer.name == name]
            membrane = by_name[0] if by_name else None
        if membrane is None:
            return None
        data = np.asarray(membrane.data)
        return data if data.shape == tuple(shape) else None

    def set_voxel_size(self, image: Image, size: tuple[float, float, float] | None) -> None:
        """The size (nm) every run on ``image`` uses from now on; None: unknown."""
        self._voxel_sizes[image] = size
        self.voxel_size_changed.emit(image)

    def voxel_size(self, layer) -> tuple[float, float, float] | None:
        """The voxel size in nm the user typed for the layer, else the file's, else None."""
        if layer is None:
            return None
        if layer in self._voxel_sizes:
            return self._voxel_sizes[layer]
        return self.scale_voxel_size(layer)

    @staticmethod
    def scale_voxel_size(layer) -> tuple[float, float, float] | None:
        """The layer's voxel size in nm from its scale, or None when unknown.

        Readers put the size in nm into ``scale`` when the file records it and leave 1.0
        otherwise (no EM stack has 1 nm voxels), so an all-ones scale means unknown.
        """
        scale = tuple(float(s) for s in layer.scale)[-3:]
        if len(scale) == 2:
            scale = (1.0, *scale)
        return None if all(s == 1.0 for s in scale) else scale  # type: ignore[return-value]

    # -- engine jobs: callables taking (progress, cancel), run by a widget's JobRunner ------------
    def segment_job(self, image: Image, data: np.ndarray):
        model, device, voxel = self.model, self.device, self.voxel_size(image)

        def job(progress, cancel):
            return pipeline.segment(
                data,
                model=model,
                device=device,
                voxel_size=voxel,
                progress=progress,
                cancel=cancel,
            )

        return job

    def repropagate_job(
        self,
        image: Image,
        labels_layer: Labels,
        labels: np.ndarray,
        *,
        references: list[int],
        objects: set[int] | None = None,
        frozen: set[int] | None = None,
        z_range: tuple[int, int] | None = None,
        method: str | None = None,
    ):
        """Propagation from the reference slices that keeps locked objects and hand edits."""
        session = self.layer(labels_layer).session
        array = np.asarray(image.data[0] if getattr(image, "multiscale", False) else image.data)
        membrane = self.membrane_for(image, labels.shape)
        frozen = session.frozen_slices() if frozen is None else frozen
        locked = set(session.locked)
        model, device, voxel = self.model, self.device, self.voxel_size(image)

        def job(progress, cancel):
            return pipeline.repropagate(
                array,
                labels,
                references=references,
                objects=objects,
                locked=locked,
                frozen_slices=frozen,
                z_range=z_range,
                membrane=membrane,
                method=method,
                model=model,
                device=device,
                voxel_size=voxel,
                progress=progress,
                cancel=cancel,
            )

        return job

    def adapt_job(self, image: Image, labels: np.ndarray, references: list[int], out):
        """Fine-tune the chosen membrane model on the corrected reference slices, save it as a
        model card at ``out``, and predict the membrane map again with it."""
        array = np.asarray(image.data[0] if getattr(image, "multiscale", False) else image.data)
        model, device, voxel = self.model, self.device, self.voxel_size(image)
        steps = self.adapt_steps

        def job(progress, cancel):
            card = pipeline.adapt(
                array,
                labels,
                references,
                out=str(out),
                model=None if model == pipeline.list_models()[0] else model,
                device=device,
                voxel_size=voxel,
                steps=steps,
                overwrite=True,  # the widget chose a fresh name
                progress=stage_progress(progress, 0.0, 0.8, "adapt"),
                cancel=cancel,
            )
            membrane = pipeline.predict_membrane(
                array,
                model=str(card),
                device=device,
                voxel_size=voxel,
                progress=stage_progress(progress, 0.8, 1.0, "membrane"),
                cancel=cancel,
            )
            return card, membrane

        return job

    def use_model(self, card) -> None:
        """Make an adapted model the one every later run uses, and list it with the others."""
        if str(card) not in self.user_models:
            self.user_models.append(str(card))
        self.model = str(card)


_SESSIONS: WeakKeyDictionary = WeakKeyDictionary()


def session_of_viewer(viewer) -> ViewerSession:
    """The session of this viewer, made on first use and shared by every widget in it."""
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = ViewerSession(viewer)
    return _SESSIONS[viewer]
