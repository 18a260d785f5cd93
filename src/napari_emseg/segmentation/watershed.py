"""Initial instance segmentation: a seeded watershed of the membrane map, slice by slice."""

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report


def watershed_slice(
    membrane: np.ndarray,
    *,
    threshold: float = 0.6,
    h: float = 6.0,
    min_size: int = 200,
    smoothing: float = 1.0,
) -> np.ndarray:
    """Label the cells of one 2D membrane map (1 = membrane); dense labels 1..N.

    Seeds are the h-maxima of the distance transform of the non-membrane region (one seed per
    cell body, robust to small bumps in the outline, with ``h`` in pixels); the watershed floods
    the smoothed membrane map from them, so cells meet on the membrane ridges and every pixel is
    labelled. Regions smaller than ``min_size`` pixels are merged into their neighbours by
    flooding again without their seeds. The defaults were chosen on ISBI 2012 slices 20-22 (4 nm
    pixels) with the ridge model; pixel-sized options scale with the cell size.

    Examples
    --------
    >>> membrane = np.zeros((40, 40), np.float32); membrane[:, 19:21] = 1
    >>> labels = watershed_slice(membrane, min_size=10)
    >>> int(labels.max()), int(labels[20, 5] != labels[20, 35])
    (2, 1)
    """
    membrane = np.asarray(membrane, np.float32)
    relief = ndi.gaussian_filter(membrane, smoothing) if smoothing > 0 else membrane
    # Threshold the unsmoothed map: smoothing would erase thin membranes and merge cells.
    interior = membrane < threshold
    if not interior.any():
        return np.ones(membrane.shape, np.uint32)
    distance = ndi.distance_transform_edt(interior)
    seeds, _ = ndi.label(h_maxima(distance, h) & interior)
    if seeds.max() == 0:
        seeds, _ = ndi.label(interior)
    labels = watershed(relief, seeds)
    if min_size > 0:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_size
        small[0] = False
        if small.any() and not small[1:].all():
            keep = np.where(small[labels], 0, labels)
            labels = watershed(relief, keep)
    return relabel_sequential(labels.astype(np.uint32))[0]


def watershed_stack(
    membrane: np.ndarray,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    **options: float,
) -> np.ndarray:
    """:func:`watershed_slice` on every slice, ids unique over the stack (consecutive).

    Ids are not linked through z: that is the propagator's job.

    Examples
    --------
    >>> membrane = np.zeros((2, 40, 40), np.float32); membrane[:, :, 19:21] = 1
    >>> np.unique(watershed_stack(membrane, min_size=10)).tolist()
    [1, 2, 3, 4]
    """
    out = np.zeros(membrane.shape, np.uint32)
    offset = 0
    for z in range(membrane.shape[0]):
        check_cancel(cancel)
        labels = watershed_slice(membrane[z], **options)
        out[z] = np.where(labels > 0, labels + offset, 0)
        offset += int(labels.max())
        report(progress, z + 1, membrane.shape[0], "watershed")
    return out
