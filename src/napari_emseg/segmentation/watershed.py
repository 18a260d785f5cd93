"""Initial instance segmentation: a seeded watershed of the membrane map, slice by slice."""

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report

# The defaults, in nm: chosen on ISBI 2012 slices 20-22 (4 nm pixels) as 6 px of h, 200 px of
# minimum area and 1 px of smoothing; in nm they give other pixel sizes the same physical cells.
H_NM = 24.0
MIN_AREA_NM2 = 3200.0
SMOOTHING_NM = 4.0
DEFAULT_PIXEL_NM = 4.0


def watershed_slice(
    membrane: np.ndarray,
    *,
    pixel_nm: float | None = None,
    threshold: float = 0.6,
    h: float | None = None,
    min_size: int | None = None,
    smoothing: float | None = None,
) -> np.ndarray:
    """Label the cells of one 2D membrane map (1 = membrane); dense labels 1..N.

    Seeds are the h-maxima of the distance transform of the non-membrane region (one seed per
    cell body, robust to small bumps in the outline); the watershed floods the smoothed
    membrane map from them, so cells meet on the membrane ridges and every pixel is labelled.
    Regions smaller than the minimum area are merged into their neighbours by flooding again
    without their seeds. ``h`` (px), ``min_size`` (px) and ``smoothing`` (px) default to
    :data:`H_NM`, :data:`MIN_AREA_NM2` and :data:`SMOOTHING_NM` at ``pixel_nm`` (default
    :data:`DEFAULT_PIXEL_NM`, the size the defaults were chosen at).

    Examples
    --------
    >>> membrane = np.zeros((40, 40), np.float32); membrane[:, 19:21] = 1
    >>> labels = watershed_slice(membrane, min_size=10)
    >>> int(labels.max()), int(labels[20, 5] != labels[20, 35])
    (2, 1)
    >>> pixel_sizes(10.0)  # h, minimum area and smoothing in pixels at 10 nm
    (2.4, 32, 0.4)
    """
    default_h, default_min, default_smoothing = pixel_sizes(pixel_nm)
    h = default_h if h is None else h
    min_size = default_min if min_size is None else min_size
    smoothing = default_smoothing if smoothing is None else smoothing
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


def pixel_sizes(pixel_nm: float | None) -> tuple[float, int, float]:
    """The watershed's h, minimum area and smoothing in pixels of ``pixel_nm``."""
    pixel = float(pixel_nm or DEFAULT_PIXEL_NM)
    return H_NM / pixel, int(round(MIN_AREA_NM2 / pixel**2)), SMOOTHING_NM / pixel


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
