"""One score for a labelling against its ground truth: adapted Rand error, VOI, object count."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from napari_emseg.metrics import adapted_rand_error, variation_of_information


@dataclass(frozen=True)
class Scores:
    """How far ``labels`` are from the ground truth.

    Attributes
    ----------
    are : float
        SNEMI3D adapted Rand error over the whole volume (ground-truth 0 ignored, predicted 0
        counted as singletons); 0 is perfect.
    voi_split, voi_merge : float
        Conditional entropies in bits over the same voxels.
    objects : int
        Ids in the labels (0 not counted).
    """

    are: float
    voi_split: float
    voi_merge: float
    objects: int


def score(labels: np.ndarray, gt: np.ndarray) -> Scores:
    """Score ``labels`` against ``gt``.

    Examples
    --------
    >>> gt = np.array([[[1, 1, 2, 2]]])
    >>> score(gt, gt)
    Scores(are=0.0, voi_split=0.0, voi_merge=0.0, objects=2)
    >>> merged = score(np.ones_like(gt), gt)
    >>> merged.are > 0, merged.voi_merge, merged.voi_split
    (True, 1.0, 0.0)
    """
    split, merge = variation_of_information(labels, gt)
    return Scores(
        are=float(adapted_rand_error(labels, gt)),
        voi_split=float(split),
        voi_merge=float(merge),
        objects=int(np.count_nonzero(np.unique(labels))),
    )


def mean_scores(found: list[Scores]) -> Scores:
    """The field-wise mean of several scores (objects rounded), e.g. from several references.

    Examples
    --------
    >>> mean_scores([Scores(0.1, 1.0, 0.5, 10), Scores(0.3, 0.0, 0.5, 13)])
    Scores(are=0.2, voi_split=0.5, voi_merge=0.5, objects=12)
    """
    means = {f.name: float(np.mean([getattr(s, f.name) for s in found])) for f in fields(Scores)}
    means["objects"] = int(round(means["objects"]))
    return Scores(**means)
