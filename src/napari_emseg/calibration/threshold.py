"""The agglomeration threshold chosen on the corrected slices.

One recorded agglomeration (:class:`~napari_emseg.segmentation.supervoxels.Hierarchy`) is cut at
every threshold of a grid; each cut is scored by its achievable error on the corrected slices.
Higher thresholds merge more: the chosen one is the highest whose error is within
:data:`TOLERANCE` of the lowest, so objects are as whole as the slice allows.
"""

import numpy as np

from napari_emseg.calibration.report import Choice
from napari_emseg.calibration.scoring import achievable_error
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
) -> Choice:
    """The threshold whose cut best reproduces the corrected ``slices`` of ``labels``.

    ``hierarchy`` covers slices ``z_offset`` onwards of ``labels``.

    Examples
    --------
    >>> from napari_emseg.segmentation.supervoxels import supervoxel_hierarchy
    >>> membrane = np.zeros((3, 12, 12), np.float32); membrane[:, :, 6] = 1
    >>> membrane[:, 3, :6] = 0.5  # a half-strength wall inside the left cell
    >>> labels = np.zeros((3, 12, 12), np.uint8); labels[1, :, :6], labels[1, :, 7:] = 1, 2
    >>> h = supervoxel_hierarchy(membrane, sigma=0, per_slice=False)
    >>> choose_threshold(h, labels, [1], default=0.3).value  # merges the left cell's parts
    0.95
    """
    grid = sorted({*thresholds, float(default)})
    scores = {}
    for t in grid:
        table = hierarchy.table(t)
        errors = [
            achievable_error(table[hierarchy.fragments[z - z_offset]], labels[z]) for z in slices
        ]
        scores[t] = float(np.mean(errors))
    best = min(scores.values())
    chosen = max(t for t, s in scores.items() if s <= best + TOLERANCE)
    return Choice(
        name="threshold",
        value=chosen,
        default=float(default),
        score=scores[chosen],
        default_score=scores[float(default)],
        scored_on=list(slices),
        candidates={f"{t:g}": round(s, 4) for t, s in scores.items()},
        how="achievable adapted Rand error of the agglomeration on the corrected slices",
    )
