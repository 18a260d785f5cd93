"""Scores on a corrected slice, and which slices can be scored on at all.

The corrected slice is the one piece of ground truth about the user's own stack. A candidate
setting is scored by the adapted Rand error of what it makes of that slice against the user's
labels (unlabelled pixels ignored). A segmentation that does not use the slice (supervoxels of
the membrane map) is scored by its *achievable* error: each segment takes the id most of its
pixels have on the slice, so only segments that cross the user's boundaries cost anything.
"""

import numpy as np

from napari_emseg.metrics import adapted_rand_error
from napari_emseg.segmentation.supervoxels import majority_vote

# A slice to calibrate on is corrected densely (labelled over at least this share: a slice
# with a few traced neurons says nothing about the cells between them) and holds at least
# MIN_OBJECTS objects of MIN_AREA pixels (fewer make every score a coin toss).
MIN_COVERAGE = 0.5
MIN_OBJECTS = 8
MIN_AREA = 20


def slice_error(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Adapted Rand error of a 2D labelling against the user's labels (0 ignored).

    Examples
    --------
    >>> truth = np.array([[1, 1, 2, 2]])
    >>> slice_error(truth, truth), round(slice_error(np.ones_like(truth), truth), 3)
    (0.0, 0.333)
    """
    return float(adapted_rand_error(np.asarray(prediction), np.asarray(truth)))


def achievable_error(segments: np.ndarray, truth: np.ndarray) -> float:
    """Error of ``segments`` on a slice once each takes its majority id there.

    Examples
    --------
    >>> truth = np.array([[1, 1, 2, 2]])
    >>> achievable_error(np.array([[5, 6, 7, 7]]), truth)  # a split costs nothing here
    0.0
    >>> round(achievable_error(np.array([[5, 5, 5, 7]]), truth), 3)  # a merge does
    0.333
    """
    return slice_error(majority_vote(np.asarray(truth), np.asarray(segments)), truth)


def why_not_calibrated(labels_2d: np.ndarray, z: int) -> str | None:
    """Why slice ``z`` cannot be calibrated on (one line), or None when it can.

    Examples
    --------
    >>> why_not_calibrated(np.zeros((4, 4), int), 3)
    'slice 3 is labelled over 0 % of its area (a dense correction is needed)'
    """
    labels_2d = np.asarray(labels_2d)
    share = float(np.count_nonzero(labels_2d)) / max(labels_2d.size, 1)
    if share < MIN_COVERAGE:
        return (
            f"slice {z} is labelled over {100 * share:.0f} % of its area (a dense correction "
            "is needed)"
        )
    _, counts = np.unique(labels_2d[labels_2d != 0], return_counts=True)
    objects = int((counts >= MIN_AREA).sum())
    if objects < MIN_OBJECTS:
        return f"slice {z} holds {objects} objects (at least {MIN_OBJECTS} are needed)"
    return None


def usable_slices(labels: np.ndarray, slices) -> tuple[list[int], str | None]:
    """The corrected slices that can be calibrated on, and why the others cannot."""
    usable, reasons = [], []
    for z in sorted({int(s) for s in slices}):
        reason = why_not_calibrated(labels[z], z)
        if reason is None:
            usable.append(z)
        else:
            reasons.append(reason)
    return usable, "; ".join(reasons) or None
