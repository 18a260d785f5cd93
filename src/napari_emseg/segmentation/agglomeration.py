"""Mean-membrane agglomeration of fragments, recorded once and cut at any threshold.

Touching fragments (watershed basins of a membrane map) merge lowest first by the mean membrane
value of their shared faces, the faces of a merged region pooled (waterz's mean-affinity merge
function). The merges are recorded with their heights: a threshold ``t`` keeps the merges before
the first one at or above ``t``, which is exactly what a run stopped at ``t`` would do. So one run
serves every threshold: calibration scores many of them for the price of one.
"""

import heapq
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MergeTree:
    """The merges of an agglomeration, in the order they happened.

    Attributes
    ----------
    n : int
        Largest fragment id (ids 1..n; 0 is never merged).
    first, second : ndarray of int64
        Merge ``k`` joined the region holding ``first[k]`` with the one holding ``second[k]``.
    height : ndarray of float64
        Mean membrane value of the faces merge ``k`` removed.
    """

    n: int
    first: np.ndarray
    second: np.ndarray
    height: np.ndarray

    def table(self, limit: float) -> np.ndarray:
        """Lookup table fragment -> region of an agglomeration stopped at ``limit``.

        Examples
        --------
        >>> tree = MergeTree(3, np.array([1, 2]), np.array([2, 3]), np.array([0.2, 0.5]))
        >>> tree.table(0.3).tolist(), tree.table(0.9).tolist()
        ([0, 1, 1, 3], [0, 1, 1, 1])
        """
        count = int(np.searchsorted(np.maximum.accumulate(self.height), limit, side="left"))
        parent = np.arange(self.n + 1)
        for a, b in zip(self.first[:count].tolist(), self.second[:count].tolist(), strict=True):
            ra, rb = _root(parent, a), _root(parent, b)
            if ra != rb:
                parent[rb] = ra
        return _flatten(parent)


def _root(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _flatten(parent: np.ndarray) -> np.ndarray:
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def merge_tree(
    first: np.ndarray, second: np.ndarray, sums: np.ndarray, counts: np.ndarray, n: int, limit
) -> MergeTree:
    """Record the merges of the lowest pair by mean face value while it is below ``limit``.

    ``first``/``second`` (a < b), ``sums`` and ``counts`` describe each touching pair's faces
    (see :func:`napari_emseg.segmentation.supervoxels.face_statistics`).

    Examples
    --------
    >>> tree = merge_tree(np.array([1, 2]), np.array([2, 3]), np.array([0.4, 1.8]),
    ...                   np.array([2, 2]), 3, 1.0)
    >>> tree.height.tolist(), tree.table(0.5).tolist()
    ([0.2, 0.9], [0, 2, 2, 3])
    """
    edges: list[dict[int, list[float]]] = [{} for _ in range(n + 1)]
    heap = []
    for a, b, s, c in zip(
        first.tolist(), second.tolist(), sums.tolist(), counts.tolist(), strict=True
    ):
        edges[a][b] = edges[b][a] = [s, c]
        if s / c < limit:
            heap.append((s / c, a, b))
    heapq.heapify(heap)
    alive = np.ones(n + 1, bool)
    merged_a, merged_b, heights = [], [], []
    while heap:
        mean, a, b = heapq.heappop(heap)
        if not (alive[a] and alive[b]):
            continue
        face = edges[a].get(b)
        if face is None or face[0] / face[1] != mean:
            continue  # stale: the pair's faces changed since it was pushed
        if len(edges[a]) < len(edges[b]):
            a, b = b, a  # fold the smaller neighbourhood into the larger
        del edges[a][b], edges[b][a]
        for other, (s, c) in edges[b].items():
            del edges[other][b]
            pooled = edges[a].get(other)
            if pooled is None:
                pooled = edges[a][other] = edges[other][a] = [s, c]
            else:
                pooled[0] += s
                pooled[1] += c
            if pooled[0] / pooled[1] < limit:
                heapq.heappush(heap, (pooled[0] / pooled[1], a, other))
        edges[b] = {}
        alive[b] = False
        merged_a.append(a)
        merged_b.append(b)
        heights.append(mean)
    return MergeTree(
        n,
        np.asarray(merged_a, np.int64),
        np.asarray(merged_b, np.int64),
        np.asarray(heights, np.float64),
    )
