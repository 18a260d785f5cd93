"""Small helpers shared by the widgets for reading and writing napari layers.

A 2D image or labels layer is a one-slice stack everywhere: :func:`stack_of` gives it a z
axis, and edits computed on that stack are written back without it.
"""

import numpy as np
from napari.layers import Labels

from napari_emseg.proofreading.edits import diff_between

# Layers the widgets add for display (the ring round a worklist place, the locked objects'
# outlines, split seeds) carry this key in their metadata: they are no one's data.
HELPER = "napari_emseg_helper"


def is_helper(layer) -> bool:
    return bool(getattr(layer, "metadata", {}).get(HELPER))


def choices_of(kind: type, viewer):
    """A magicgui ``choices`` callable listing the viewer's layers of one kind (not ours)."""

    def choices(_widget=None):
        return [
            (layer.name, layer)
            for layer in viewer.layers
            if isinstance(layer, kind) and not is_helper(layer)
        ]

    return choices


def same_space_as(layer, *, ndim: int = 3) -> dict:
    """Layer keywords that put a new layer in the space of ``layer``: voxel size, offset,
    units and axis names (a 2D image's stack gets a unit z axis)."""
    pad = ndim - layer.ndim

    def padded(values, filler):
        return (*([filler] * pad), *tuple(values)[-ndim:])

    return {
        "scale": padded(layer.scale, 1.0),
        "translate": padded(layer.translate, 0.0),
        "units": padded((str(u) for u in layer.units), "pixel"),
        "axis_labels": padded(layer.axis_labels, "z"),
        "metadata": {"unit": layer.metadata.get("unit", "nm")},
    }


def helper_space(layer) -> dict:
    """:func:`same_space_as` for a display layer of ours."""
    space = same_space_as(layer)
    space["metadata"] = {**space["metadata"], HELPER: True}
    return space


def stack_of(layer) -> np.ndarray:
    """The full-resolution array of an image or labels layer, as a (Z, Y, X) stack (a 2D
    layer is a one-slice stack; RGB images are refused before they get here)."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    data = np.asarray(data)
    return data[None] if data.ndim == 2 else data


def stack_indices(layer, indices: tuple) -> tuple:
    """Indices into a layer's stack (:func:`stack_of`) as indices into the layer itself."""
    return tuple(indices[1:]) if layer.ndim == 2 else tuple(indices)


def apply_as_undoable_edit(
    layer: Labels, new: np.ndarray, *, since: np.ndarray | None = None
) -> int:
    """Write ``new`` into a labels layer as ONE undo step; returns the number of changed voxels.

    ``new`` and ``since`` are stacks (:func:`stack_of`). ``since`` is the layer's data when the
    job that computed ``new`` started: voxels the user painted meanwhile keep the user's value
    (the layer stays editable during jobs, so that napari keeps its undo history). Only the
    changed voxels are recorded (a diff).
    """
    data = layer.data
    current = stack_of(layer)
    if since is not None:
        new = np.where(current != since, current, new)
    if new.max(initial=0) > np.iinfo(data.dtype).max:
        layer.data = data.astype(np.uint32)  # new ids would not fit the user's dtype
        data = layer.data
        current = stack_of(layer)
    diff = diff_between(current, new)
    if diff.size:
        layer.data_setitem(stack_indices(layer, diff.indices), diff.values.astype(data.dtype))
    return diff.size
