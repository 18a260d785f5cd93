"""One proofreading session per labels layer, shared by every widget of the viewer.

The Segment widget's Propagate and the Proofread widget's tools must agree on what the user
protected (locked objects, slices painted by hand), so both ask here for the layer's session
instead of keeping their own. Sessions die with their layer: nothing global outlives it.
"""

from contextlib import contextmanager
from weakref import WeakKeyDictionary

from napari.layers import Labels

from napari_emseg.proofreading import ProofreadingSession


def painted_slices(atoms) -> set[int]:
    """The z indices a napari paint event touched (its history atoms)."""
    import numpy as np

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
    """A layer's :class:`ProofreadingSession`, fed with the slices the user paints by hand."""

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


_SESSIONS: "WeakKeyDictionary[Labels, LayerSession]" = WeakKeyDictionary()


def session_of(layer: Labels) -> LayerSession:
    """The session of this labels layer, made on first use."""
    if layer not in _SESSIONS:
        _SESSIONS[layer] = LayerSession(layer)
    return _SESSIONS[layer]
