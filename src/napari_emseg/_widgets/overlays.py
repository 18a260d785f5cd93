"""Display layers of the Proofread widget: locked objects outlined, a worklist place ringed,
and the camera brought to an object.

They are marked as ours (:func:`~napari_emseg._widgets.layers.is_helper`), so no widget offers
them as data, and the labels layer stays the active one (the paint tools stay at hand).
"""

import numpy as np
from napari.utils.colormaps import DirectLabelColormap

from napari_emseg._widgets.layers import helper_space, stack_of

RING_LAYER = "worklist place"
# A place's object fills about 1 / ZOOM_CONTEXT of the canvas; a speck is shown as if it
# were MIN_VIEW_PX wide (context around it).
ZOOM_CONTEXT = 1.5
MIN_VIEW_PX = 64


def lock_layer_name(labels) -> str:
    return f"{labels.name} locked"


def show_locked(viewer, labels, locked: set[int]):
    """Outline the locked objects of ``labels`` in white (a helper layer); None if none."""
    name = lock_layer_name(labels)
    existing = [layer for layer in viewer.layers if layer.name == name]
    active = viewer.layers.selection.active
    if not locked:
        for layer in existing:
            viewer.layers.remove(layer)
        return None
    mask = np.isin(stack_of(labels), sorted(locked)).astype(np.uint8)
    if existing:
        layer = existing[0]
        layer.data = mask
    else:
        layer = viewer.add_labels(mask, name=name, opacity=1.0, **helper_space(labels))
        layer.colormap = DirectLabelColormap(color_dict={None: "transparent", 1: "white"})
        layer.contour = 2
        layer.editable = False
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    return layer


def ring_place(viewer, labels, z: int, centroid: tuple[float, float], radius: float):
    """Ring the object meant by a worklist place (a points layer)."""
    centre = [[z, *centroid]]
    if RING_LAYER in viewer.layers:
        marker = viewer.layers[RING_LAYER]
        marker.data = centre
        marker.size = 2 * radius + 12
    else:
        marker = viewer.add_points(
            centre,
            name=RING_LAYER,
            ndim=3,
            **helper_space(labels),
            size=2 * radius + 12,
            face_color="transparent",
            border_color="red",
            border_width=0.08,
        )
    viewer.layers.selection.active = labels  # keep the paint tools at hand
    return marker


def canvas_size(viewer) -> tuple[int, int]:
    """The canvas size (height, width) in screen pixels."""
    size = getattr(getattr(viewer, "canvas", None), "size", None)
    if size is None:
        size = getattr(viewer, "_canvas_size", (600, 800))
    return int(size[0]), int(size[1])


def zoom_to(viewer, labels, z: int, box: tuple[int, int, int, int], *, camera) -> None:
    """Show slice ``z`` centred on ``box`` (y0, x0, y1, x1 in the labels' pixels), zoomed so
    the box fills about two thirds of the canvas, but never out beyond the whole slice."""
    y0, x0, y1, x1 = box
    centre = np.array([z, (y0 + y1) / 2, (x0 + x1) / 2])
    world = np.asarray(labels.data_to_world(centre[-labels.ndim :]))
    if labels.ndim == 3:
        viewer.dims.set_point(0, float(world[0]))
    scale_y, scale_x = (abs(float(s)) for s in labels.scale[-2:])
    extent = max((y1 - y0) * scale_y, (x1 - x0) * scale_x, MIN_VIEW_PX * scale_x)
    whole = max(labels.data.shape[-2] * scale_y, labels.data.shape[-1] * scale_x)
    camera.center = tuple(float(w) for w in world[-2:])
    view = min(canvas_size(viewer))
    camera.zoom = max(view / (ZOOM_CONTEXT * extent), 0.95 * view / whole)


def object_radius(plane: np.ndarray, obj: int) -> float:
    """The radius of a disc of the object's area in a slice (10 px when it is absent)."""
    area = int(np.count_nonzero(plane == obj))
    return float(np.sqrt(area / np.pi)) if area else 10.0
