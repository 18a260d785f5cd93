"""Small helpers shared by the widgets for reading and writing napari layers."""

import numpy as np
from napari.layers import Labels

from napari_emseg.proofreading.edits import diff_between


def choices_of(kind: type, viewer):
    """A magicgui ``choices`` callable listing the viewer's layers of one kind."""

    def choices(_widget=None):
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kind)]

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


def stack_of(layer) -> np.ndarray:
    """The full-resolution array of an image or labels layer."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def apply_as_undoable_edit(
    layer: Labels, new: np.ndarray, *, since: np.ndarray | None = None
) -> int:
    """Write ``new`` into a labels layer as ONE undo step; returns the number of changed voxels.

    ``since`` is the layer's data when the job that computed ``new`` started: voxels the user
    painted meanwhile keep the user's value (the layer stays editable during jobs, so that
    napari keeps its undo history). Only the changed voxels are recorded (a diff).
    """
    data = layer.data
    current = np.asarray(data)
    if since is not None:
        new = np.where(current != since, current, new)
    if new.max(initial=0) > np.iinfo(data.dtype).max:
        layer.data = data.astype(np.uint32)  # new ids would not fit the user's dtype
        data = layer.data
        current = np.asarray(data)
    diff = diff_between(current, new)
    if diff.size:
        layer.data_setitem(diff.indices, diff.values.astype(data.dtype))
    return diff.size
