"""Id helpers shared by the proofreading modules: compact renumbering and fast membership."""

from __future__ import annotations

import numpy as np

_TABLE_LIMIT = 1 << 24  # lookup tables up to this id (16 MB of bools); np.isin beyond


def compact_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted non-zero ids, labels renumbered 1..n in that order, int32; 0 stays 0).

    Examples
    --------
    >>> ids, work = compact_ids(np.array([[0, 70], [9, 70]]))
    >>> ids.tolist(), work.tolist()
    ([9, 70], [[0, 2], [1, 2]])
    """
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise ValueError("labels contain negative ids")
    top = int(labels.max(initial=0))
    if top <= max(_TABLE_LIMIT, labels.size):
        present = np.zeros(top + 1, bool)
        present[labels.ravel()] = True
        present[0] = False
        ids = np.flatnonzero(present)
        table = np.zeros(top + 1, np.int32)
        table[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
        return ids, table[labels]
    # Huge ids (hashes, uint64): a lookup table up to the largest id would not fit.
    ids, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(labels.shape).astype(np.int32)
    if ids.size and ids[0] == 0:
        return ids[1:], inverse
    return ids, inverse + 1


def member(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``np.isin(values, ids)``, through a lookup table when the ids are small (much faster).

    Examples
    --------
    >>> member(np.array([0, 3, 5, 900]), np.array([3, 900])).tolist()
    [False, True, False, True]
    """
    ids = np.asarray(ids)
    if ids.size == 0:
        return np.zeros(values.shape, bool)
    top = int(ids.max())
    if values.dtype.kind in "iu" and ids.dtype.kind in "iu" and 0 <= top < _TABLE_LIMIT:
        table = np.zeros(top + 2, bool)
        table[ids[ids >= 0]] = True
        return table[np.minimum(values, top + 1)]
    return np.isin(values, ids)
