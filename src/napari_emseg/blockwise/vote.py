"""The supervoxel vote of a chained blockwise run, once over the whole volume.

One whole-volume run propagates, then lets every supervoxel of the membrane map take the id most
of its voxels were given (:func:`napari_emseg.segmentation.supervoxels.supervoxel_vote`). A block
that voted on its own would see only the part of a supervoxel inside it, and on near-isotropic
voxels supervoxels span many slices, so blocks would vote differently from one run. Instead each
block keeps its propagated labels and its supervoxels; the stitching gives both consistent ids
(supervoxels are matched in the overlaps like labels); each block then counts, in its core, the
voxels of every (supervoxel, object) pair (:func:`tally`); the counts of all blocks decide each
supervoxel's winner (:func:`winners`); and every block applies them (:func:`apply_winners`).
Only tables with one row per pair travel between tasks, never voxels.
"""

from __future__ import annotations

import numpy as np

# Column order of a tally: supervoxel (output id), object (output id), voxel count.
TALLY_COLUMNS = 3


def tally(labels: np.ndarray, supervoxels: np.ndarray) -> np.ndarray:
    """``(supervoxel, object, voxels)`` rows of one block's core (objects > 0, supervoxels > 0).

    Examples
    --------
    >>> tally(np.array([1, 1, 2, 0]), np.array([7, 7, 7, 7])).tolist()
    [[7, 1, 2], [7, 2, 1]]
    """
    voting = (labels != 0) & (supervoxels != 0)
    if not voting.any():
        return np.zeros((0, TALLY_COLUMNS), np.int64)
    base = np.int64(labels.max()) + 1  # one int64 key per voxel: unique over rows is far slower
    keys, counts = np.unique(
        supervoxels[voting].astype(np.int64) * base + labels[voting], return_counts=True
    )
    return np.column_stack([keys // base, keys % base, counts]).astype(np.int64)


def winners(tallies: list[np.ndarray], n_supervoxels: int) -> np.ndarray:
    """``winner[s]``: the object with most voxels in supervoxel ``s`` over all blocks (0: none).

    Ties go to the larger id, as :func:`~napari_emseg.segmentation.supervoxels.majority_vote`
    breaks them in one run (its ids are ordered like these).

    Examples
    --------
    >>> winners([np.array([[1, 4, 2], [1, 5, 1]]), np.array([[1, 5, 3], [2, 4, 1]])], 3).tolist()
    [0, 5, 4, 0]
    """
    rows = np.concatenate([np.zeros((0, TALLY_COLUMNS), np.int64), *tallies])
    winner = np.zeros(n_supervoxels + 1, np.int64)
    if rows.size == 0:
        return winner
    pairs, inverse = np.unique(rows[:, :2], axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=rows[:, 2]).astype(np.int64)
    order = np.lexsort((pairs[:, 1], counts, pairs[:, 0]))  # the winner comes last per supervoxel
    supervoxel = pairs[order, 0]
    last = np.r_[supervoxel[1:] != supervoxel[:-1], True]
    winner[supervoxel[last]] = pairs[order, 1][last]
    return winner


def apply_winners(
    labels: np.ndarray, supervoxels: np.ndarray, winner: np.ndarray, fixed: np.ndarray
) -> np.ndarray:
    """Labelled voxels outside ``fixed`` take their supervoxel's winner (where it has one).

    Voxels labelled 0 stay 0: the vote moves outlines between objects, it does not paint.

    Examples
    --------
    >>> labels, sv = np.array([1, 2, 0, 2]), np.array([1, 1, 1, 2])
    >>> apply_winners(labels, sv, np.array([0, 1, 0]), np.zeros(4, bool)).tolist()
    [1, 1, 0, 2]
    """
    won = winner[supervoxels]
    change = (labels != 0) & (won != 0) & ~fixed
    return np.where(change, won, labels).astype(labels.dtype, copy=False)
