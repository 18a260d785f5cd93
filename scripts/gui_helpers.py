"""What the screenshot scripts share: waiting for a widget's job, picking a correction, and
painting as a person does (brush strokes inside a neuron)."""

import time

import numpy as np
from qtpy.QtWidgets import QApplication
from scipy import ndimage as ndi


def settle(widget=None, timeout: float = 1800.0) -> None:
    """Process Qt events until ``widget`` (if given) is idle, then let the canvas redraw."""
    start = time.monotonic()
    while widget is not None and widget.busy:
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError("the widget's job did not finish")
    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.05)


def largest_touching_pair(plane: np.ndarray) -> tuple[int, int]:
    """The two largest objects of a slice that share a boundary: a typical merge to correct."""
    ids, counts = np.unique(plane[plane > 0], return_counts=True)
    size = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    pairs = set()
    for a, b in ((plane[:, :-1], plane[:, 1:]), (plane[:-1], plane[1:])):
        touching = (a != b) & (a > 0) & (b > 0)
        pairs.update(zip(a[touching].tolist(), b[touching].tolist(), strict=True))
    if not pairs:
        raise RuntimeError("no touching objects to merge")
    return max(pairs, key=lambda pair: min(size[pair[0]], size[pair[1]]))


def neurons_to_trace(truth: np.ndarray, z: int, count: int = 2) -> list[int]:
    """Large ground-truth neurons of slice z that run through the whole stack."""
    ids, sizes = np.unique(truth[z][truth[z] > 0], return_counts=True)
    through = [int(i) for i in ids[np.argsort(sizes)[::-1]] if (truth == i).any(axis=(1, 2)).all()]
    return through[:count]


def paint_inside(layer, z: int, mask: np.ndarray, label: int, *, brush: int = 14) -> None:
    """Brush strokes over a neuron, kept a brush away from its membrane (as a person paints)."""
    layer.brush_size = brush
    inside = np.argwhere(ndi.binary_erosion(mask, iterations=brush // 2))
    for y, x in inside[:: max(len(inside) // 60, 1)]:
        layer.paint((z, int(y), int(x)), label)
