"""The agglomeration threshold chosen on the corrected slices.

One recorded agglomeration (:class:`~napari_emseg.segmentation.supervoxels.Hierarchy`) is cut at
every threshold of a grid; each cut is scored by its achievable error on the corrected slices.
The default stays unless another threshold beats it by more than :data:`TOLERANCE` (one
slice's score is noisy: on ISBI slices 0-19 a vote threshold of 0.9 scoring 0.041 against the
default's 0.040 raised the 3D error from 0.227 to 0.237). Otherwise higher thresholds merge
more: the chosen one is the highest within :data:`TOLERANCE` of the lowest error, so objects
are as whole as the slice allows.

The achievable error never sees a split, so on its own it drifts to the lowest threshold of
the grid. Where the segments become the objects of the whole stack (the ``agglomeration``
method: only those crossing the corrected slice are named by it, the others stay apart),
``split_weight`` mixes in the cut's plain error on the slice, which does count splits.
"""

import numpy as np

from napari_emseg.calibration.report import Choice
from napari_emseg.calibration.scoring import achievable_error, slice_error
from napari_emseg.segmentation.supervoxels import Hierarchy

THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.3, 0.951, 0.05))
TOLERANCE = 0.002


def choose_threshold(
    hierarchy: Hierarchy,
    labels: np.ndarray,
    slices: list[int],
    *,
    default: float,
    z_offset: int = 0,
    thresholds: tuple[float, ...] = THRESHOLDS,
    split_weight: float = 0.0,
) -> Choice:
    """The threshold whose cut best reproduces the corrected ``slices`` of ``labels``.

    ``hierarchy`` covers slices ``z_offset`` onwards of ``labels``. A cut scores its achievable
    error, or with ``split_weight`` w, (1 - w) x achievable + w x its plain error.

    Examples
    --------
    >>> from napari_emseg.segmentation.supervoxels import supervoxel_hierarchy
    >>> membrane = np.zeros((3, 12, 12), np.float32); membrane[:, :, 6] = 1
    >>> membrane[:, 3, :6] = 0.5  # a half-strength wall inside the left cell
    >>> labels = np.zeros((3, 12, 12), np.uint8); labels[1, :, :6], labels[1, :, 7:] = 1, 2
    >>> h = supervoxel_hierarchy(membrane, sigma=0, per_slice=False)
    >>> choose_threshold(h, labels, [1], default=0.3).value  # a split costs nothing here
    0.3
    >>> choose_threshold(h, labels, [1], default=0.3, split_weight=0.5).value  # it does here
    0.95
    """
    grid = sorted({*thresholds, float(default)})
    scores = {}
    for t in grid:
        table = hierarchy.table(t)
        errors = []
        for z in slices:
            cut = table[hierarchy.fragments[z - z_offset]]
            error = achievable_error(cut, labels[z])
            if split_weight:
                error += split_weight * (slice_error(cut, labels[z]) - error)
            errors.append(error)
        scores[t] = float(np.mean(errors))
    best = min(scores.values())
    chosen = float(default)
    if scores[chosen] > best + TOLERANCE:
        chosen = max(t for t, s in scores.items() if s <= best + TOLERANCE)
    return Choice(
        name="threshold",
        value=chosen,
        default=float(default),
        score=scores[chosen],
        default_score=scores[float(default)],
        scored_on=list(slices),
        candidates={f"{t:g}": round(s, 4) for t, s in scores.items()},
        how=(
            "achievable adapted Rand error of the agglomeration on the corrected slices"
            + (f", mixed {split_weight:g} with its plain error" if split_weight else "")
        ),
    )
