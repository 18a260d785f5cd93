"""What a scripted proofreader corrects (the GUI tours behind docs/proofreading.md and the
README screenshot): a typical false merge, and neurons worth tracing."""

from __future__ import annotations

import numpy as np


def largest_touching_pair(plane: np.ndarray) -> tuple[int, int]:
    """The two largest objects of a slice that share a boundary: a typical merge to correct.

    Examples
    --------
    >>> plane = np.array([[1, 1, 2, 2, 0, 3]])
    >>> largest_touching_pair(plane)
    (1, 2)
    """
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
    """The ``count`` largest ground-truth neurons of slice ``z`` that run through the whole
    stack.

    Examples
    --------
    >>> truth = np.array([[[1, 1, 2, 3, 3, 3]], [[1, 1, 1, 0, 0, 0]]])
    >>> neurons_to_trace(truth, 0)
    [1]
    """
    ids, sizes = np.unique(truth[z][truth[z] > 0], return_counts=True)
    through = [int(i) for i in ids[np.argsort(sizes)[::-1]] if (truth == i).any(axis=(1, 2)).all()]
    return through[:count]
