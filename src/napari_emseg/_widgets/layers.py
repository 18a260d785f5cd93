"""Small helpers shared by the widgets for reading and writing napari layers."""

import numpy as np
from napari.layers import Labels


def choices_of(kind: type, viewer):
    """A magicgui ``choices`` callable listing the viewer's layers of one kind."""

    def choices(_widget=None):
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kind)]

    return choices


def stack_of(layer) -> np.ndarray:
    """The full-resolution array of an image or labels layer."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def apply_as_undoable_edit(layer: Labels, new: np.ndarray) -> int:
    """Write ``new`` into a labels layer as ONE undo step; returns the number of changed voxels.

    Only the changed voxels are recorded (a diff), so the history stays small.
    """
    data = layer.data
    if new.max(initial=0) > np.iinfo(data.dtype).max:
        layer.data = data.astype(np.uint32)  # new ids would not fit the user's dtype
        data = layer.data
    changed = np.nonzero(np.asarray(data) != new)
    if changed[0].size:
        layer.data_setitem(changed, new[changed].astype(data.dtype))
    return int(changed[0].size)


def membrane_layer_of(viewer, image_layer, shape) -> np.ndarray | None:
    """The membrane map Segment added for this image, if it is still there and fits."""
    if image_layer is None:
        return None
    name = f"{image_layer.name} membrane"
    if name not in viewer.layers:
        return None
    data = np.asarray(viewer.layers[name].data)
    return data if data.shape == tuple(shape) else None


def method_options_for(method: str | None, image_layer) -> dict:
    """Options a propagation method takes from the image layer: the learned one's pixel size.

    Readers put the voxel size in nm into ``scale`` when the file records it and leave 1.0
    otherwise (no EM stack has 1 nm pixels), so 1.0 means unknown.
    """
    from napari_emseg.propagation.api import DEFAULT_METHOD

    if (method or DEFAULT_METHOD) != "cconvlstm" or image_layer is None:
        return {}
    pixel = float(image_layer.scale[-1])
    return {"image_pixel_nm": pixel} if pixel != 1.0 else {}
