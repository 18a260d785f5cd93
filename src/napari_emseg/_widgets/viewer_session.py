"""One session per napari viewer: the state both dock widgets show and change.

It owns the membrane model, device and tracing mode the user chose, the labels and image
layers both widgets work on, the proofreading session of every labels layer (reference
slices, locked objects, slices painted by hand, the slice edited last), the membrane map
Segment made for each image, autosave, and the viewer's one job runner. The widgets are views
over it: a choice made in one is what the other shows and uses. Engine work goes through
:mod:`napari_emseg.pipeline` only. Nothing is global: a session lives as long as its viewer,
and closing the viewer cancels and joins its job.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from weakref import WeakKeyDictionary

import numpy as np
from napari.layers import Image, Labels
from psygnal import Signal
from qtpy.QtCore import QEvent, QObject

from napari_emseg import pipeline
from napari_emseg._progress import stage_progress
from napari_emseg._widgets.autosave import Autosaver
from napari_emseg._widgets.layers import is_helper, stack_of
from napari_emseg._widgets.runner import JobRunner
from napari_emseg.proofreading import ProofreadingSession

# The model choice that lets the facade pick the default model for the stack's pixel size.
AUTO_MODEL = "auto"
# The tracing modes a user chooses from, and what the facade's ``sparse=`` gets for each.
TRACING = {"auto": None, "sparse": True, "dense": False}


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
    """A labels layer's :class:`ProofreadingSession`, fed with the slices painted by hand.

    ``last_edited`` is the slice the user painted last (None before any edit); ``on_edit``
    is called with it after every hand edit.
    """

    def __init__(self, layer: Labels, on_edit=None):
        self.session = ProofreadingSession()
        self.last_edited: int | None = None
        self.done: set[int] = set()  # worklist objects the user marked done
        self._on_edit = on_edit
        self._quiet = 0
        layer.events.paint.connect(self._on_paint)

    def _on_paint(self, event) -> None:
        if self._quiet:
            return
        if getattr(event.source, "ndim", 3) == 2:
            slices = {0}  # a 2D layer is a one-slice stack
        else:
            slices = painted_slices(getattr(event, "value", None))
        if not slices:
            return
        self.session.mark_edited(slices)
        self.last_edited = max(slices)
        if self._on_edit is not None:
            self._on_edit(event.source, self.last_edited)

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

    #: Emitted with the labels layer whose reference slices or locked objects changed.
    references_changed = Signal(object)
    #: Emitted when the model, device or tracing mode changes.
    choice_changed = Signal()
    #: Emitted with the image layer whose voxel size was typed.
    voxel_size_changed = Signal(object)
    #: Emitted when the labels or image layer both widgets work on changes.
    layers_chosen = Signal()
    #: Emitted with (labels layer, z) after the user painted slice z by hand.
    edited = Signal(object, int)

    def __init__(self, viewer):
        self.viewer = viewer
        self._model = AUTO_MODEL
        self.calibrate = True  # choose thresholds on the corrected slices (the facade's default)
        self._estimated: WeakKeyDictionary[Image, tuple] = WeakKeyDictionary()
        self._device = "auto"
        self._tracing = "auto"
        self._labels = None  # weak references to the chosen layers
        self._image = None
        self._layers: WeakKeyDictionary[Labels, LayerSession] = WeakKeyDictionary()
        self._membranes: WeakKeyDictionary[Image, Image] = WeakKeyDictionary()
        self._voxel_sizes: WeakKeyDictionary[Image, tuple | None] = WeakKeyDictionary()
        self.autosaver = Autosaver()
        self.runner = JobRunner()
        self._proofread = None
        self._window_watcher = None
        self.user_models: list[str] = []  # cards made by Adapt in this session
        self.adapt_steps: int | None = None  # None: adapt's own default
        self._hook_viewer_close()
        viewer.layers.selection.events.active.connect(self._follow_active)

    # -- closing ------------------------------------------------------------------------------
    def _hook_viewer_close(self) -> None:
        """Cancel and join the running job when the application quits (the main window's
        close is watched by :meth:`watch_window`, once a widget is docked in it)."""
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.runner.shutdown)

    def watch_window(self, window) -> None:
        """Shut the job down when the viewer's main window closes (is hidden, not minimised:
        a close the user confirmed, or ``viewer.close()``)."""
        if self._window_watcher is None and window is not None:
            self._window_watcher = _CloseWatcher(self.runner.shutdown, parent=window)
            window.installEventFilter(self._window_watcher)

    def shutdown(self) -> None:
        """Cancel and join the running job (a widget or the viewer is closing)."""
        self.runner.shutdown()

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

    @property
    def engine_model(self) -> str | None:
        """What the facade gets: None for "auto" (the default model for the pixel size)."""
        return None if self._model == AUTO_MODEL else self._model

    @model.setter
    def model(self, name: str) -> None:
        """``"auto"``, a registered name or a card's path (listed with the others from then on)."""
        name = str(name)
        known = name == AUTO_MODEL or name in pipeline.list_models()
        if not known and name not in self.user_models:
            self.user_models.append(name)
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

    @property
    def tracing(self) -> str:
        """``"auto"`` (from the reference's coverage), ``"sparse"`` or ``"dense"``."""
        return self._tracing

    @tracing.setter
    def tracing(self, mode: str) -> None:
        if mode not in TRACING:
            raise ValueError(f"tracing mode must be one of {', '.join(TRACING)}, got {mode!r}")
        if mode != self._tracing:
            self._tracing = mode
            self.choice_changed.emit()

    # -- the layers both widgets work on -----------------------------------------------------------
    @property
    def labels(self) -> Labels | None:
        layer = self._labels() if self._labels is not None else None
        return layer if layer is not None and layer in self.viewer.layers else None

    @property
    def image(self) -> Image | None:
        layer = self._image() if self._image is not None else None
        return layer if layer is not None and layer in self.viewer.layers else None

    def choose(self, *, labels=None, image=None) -> None:
        """Make these the layers both widgets work on (None leaves a choice as it is)."""
        changed = False
        if labels is not None and labels is not self.labels:
            self._labels = weakref.ref(labels)
            self.layer(labels)  # start following its hand edits now
            changed = True
            if image is None and not self._fits(self.image, labels):
                image = self._image_for(labels)
        if image is not None and image is not self.image:
            self._image = weakref.ref(image)
            changed = True
        if changed:
            self.layers_chosen.emit()

    @staticmethod
    def _fits(image, labels) -> bool:
        return image is not None and stack_of(image).shape == stack_of(labels).shape

    def _image_for(self, labels) -> Image | None:
        for layer in self.viewer.layers:
            if isinstance(layer, Image) and not is_helper(layer) and self._fits(layer, labels):
                return layer
        return None

    def _follow_active(self, event=None) -> None:
        """The labels layer the user selects in the layer list is the one both widgets use."""
        layer = self.viewer.layers.selection.active
        if isinstance(layer, Labels) and not is_helper(layer):
            self.choose(labels=layer)

    # -- per labels layer ---------------------------------------------------------------------
    def layer(self, labels: Labels) -> LayerSession:
        """The proofreading session of a labels layer, made on first use."""
        if labels not in self._layers:
            self._layers[labels] = LayerSession(labels, on_edit=self.edited.emit)
        return self._layers[labels]

    def add_reference(self, labels: Labels, z: int) -> None:
        self.layer(labels).session.add_reference(z)
        self.references_changed.emit(labels)

    def references(self, labels: Labels | None) -> list[int]:
        return [] if labels is None else sorted(self.layer(labels).session.reference_slices)

    def toggle_lock(self, labels: Labels, obj: int) -> bool:
        locked = self.layer(labels).session.toggle_lock(obj)
        self.references_changed.emit(labels)
        return locked

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
        data = stack_of(membrane)
        return data if data.shape == tuple(shape) else None

    def set_voxel_size(self, image: Image, size: tuple[float, float, float] | None) -> None:
        """The size (nm) every run on ``image`` uses from now on; None: unknown."""
        self._voxel_sizes[image] = size
        self.voxel_size_changed.emit(image)

    def voxel_size(self, layer) -> tuple[float, float, float] | None:
        """The voxel size in nm the user typed for the layer, else the file's, else the one a
        run estimated, else None (the next run estimates it)."""
        if layer is None:
            return None
        if layer in self._voxel_sizes and self._voxel_sizes[layer] is not None:
            return self._voxel_sizes[layer]
        return self.scale_voxel_size(layer) or self._estimated.get(layer)

    def estimated_voxel_size(self, layer) -> tuple[float, float, float] | None:
        """The size a run estimated for ``layer`` when neither the user nor the file gave one."""
        if layer is None or self._voxel_sizes.get(layer) or self.scale_voxel_size(layer):
            return None
        return self._estimated.get(layer)

    def remember_estimate(self, image: Image, result) -> None:
        """Keep the voxel size a run estimated for ``image`` (a ``Segmentation`` or
        ``Propagation`` whose ``voxel_estimated`` is set), so later runs use the same one and
        the voxel field shows it as estimated."""
        voxel = getattr(result, "voxel_size", None)
        if image is None or voxel is None or not getattr(result, "voxel_estimated", False):
            return
        if self._voxel_sizes.get(image) or self.scale_voxel_size(image):
            return
        self._estimated[image] = tuple(float(v) for v in voxel)
        self.voxel_size_changed.emit(image)

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

    # -- engine jobs: callables taking (progress, cancel), run by the viewer's runner -------------
    def segment_job(self, image: Image, data: np.ndarray):
        model, device, voxel = self.engine_model, self.device, self.voxel_size(image)

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
        interactive: bool = True,
    ):
        """Propagation from the reference slices that keeps locked objects and hand edits,
        in the tracing mode chosen (``Propagation.sparse`` says which ran)."""
        session = self.layer(labels_layer).session
        array = stack_of(image)
        membrane = self.membrane_for(image, labels.shape)
        frozen = session.frozen_slices() if frozen is None else frozen
        locked = set(session.locked)
        model, device, voxel = self.engine_model, self.device, self.voxel_size(image)
        sparse = TRACING[self.tracing]
        calibrate = self.calibrate

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
                sparse=sparse,
                calibrate=calibrate,
                interactive=interactive,
                progress=progress,
                cancel=cancel,
            )

        return job

    def adapt_job(self, image: Image, labels: np.ndarray, references: list[int], out):
        """Fine-tune the model in use on the corrected reference slices into a card at
        ``out``; when it beats the model in use on held-out corrections, predict the
        membrane map again with it. Returns ``(Adaptation, membrane or None)``."""
        array = stack_of(image)
        model, device, voxel = self.engine_model, self.device, self.voxel_size(image)
        steps = self.adapt_steps

        def job(progress, cancel):
            result = pipeline.adapt(
                array,
                labels,
                references,
                out=str(out),
                model=model,
                device=device,
                voxel_size=voxel,
                steps=steps,
                overwrite=True,  # the widget chose a fresh name
                progress=stage_progress(progress, 0.0, 0.8, "adapt"),
                cancel=cancel,
            )
            if not result.kept:
                return result, None
            membrane = pipeline.predict_membrane(
                array,
                model=str(result.card),
                device=device,
                voxel_size=voxel,
                progress=stage_progress(progress, 0.8, 1.0, "membrane"),
                cancel=cancel,
            )
            return result, membrane

        return job

    def use_model(self, card) -> None:
        """Make an adapted model the one every later run uses, and list it with the others."""
        if str(card) not in self.user_models:
            self.user_models.append(str(card))
        self.model = str(card)


class _CloseWatcher(QObject):
    """Calls ``on_close`` when the watched window closes: ``close()`` from code (napari
    accepts it at once), or a hide after the user's close (minimising hides spontaneously)."""

    def __init__(self, on_close, parent=None):
        super().__init__(parent)
        self._on_close = on_close

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() in (QEvent.Close, QEvent.Hide) and not event.spontaneous():
            self._on_close()
        return False


_SESSIONS: WeakKeyDictionary = WeakKeyDictionary()


def session_of_viewer(viewer) -> ViewerSession:
    """The session of this viewer, made on first use and shared by every widget in it."""
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = ViewerSession(viewer)
    return _SESSIONS[viewer]
