"""What the GUI tests share besides fixtures: the widgets' names, waiting, where to paint."""

import numpy as np

SEGMENT = ("napari-emseg", "Segment and propagate")
PROOFREAD = ("napari-emseg", "Proofread")


def wait_idle(qtbot, widget, timeout: int = 60_000) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


def interior(mask: np.ndarray, margin: int = 3) -> np.ndarray:
    """The pixels of a 2D mask at least ``margin`` px inside it (where a user paints)."""
    from scipy import ndimage as ndi

    return np.argwhere(ndi.binary_erosion(mask, iterations=margin))


def two_large_objects(truth: np.ndarray, z: int) -> list[int]:
    """Two large ground-truth objects of slice z that run through the whole stack, each under
    15% of the slice (a few neurons traced, not most of the slice)."""
    ids, counts = np.unique(truth[z][truth[z] > 0], return_counts=True)
    small = counts < 0.15 * truth[z].size
    ids, counts = ids[small], counts[small]
    through = [int(i) for i in ids[np.argsort(counts)[::-1]] if (truth == i).any(axis=(1, 2)).all()]
    return through[:2]
