"""Make ids consistent across blocks: match ids where blocks overlap, merge them, renumber.

Blockwise segmentation labels every block on its own, so the same neuron gets a different id in
each block it crosses. Blocks that share a face were segmented on overlapping regions (their
halos), so both labelled the voxels there:

1. every block's local ids ``1..n`` are shifted into a disjoint global range
   (:func:`id_offsets`), so no two blocks share an id;
2. in each overlap, :func:`match_overlap` pairs an id of one block with an id of the other when
   their common voxels are more than ``threshold`` of *both* ids' voxels in that overlap (with
   the default 0.5 this is mutual majority, so each id matches at most one id of the other
   block);
3. matched ids are merged with a union-find (:class:`UnionFind`), also across chains of blocks
   (so an object passing from a block to its diagonal neighbour is linked through the blocks
   that share a face with both, whose overlaps contain that corner);
4. :func:`final_ids` numbers the merged objects ``1..N`` (only those with voxels in some core).

The rule prefers a split to a merge: an object that one block cut in two matches neither piece,
and stays split at that block face. Only one overlap, or one block's ids, is in memory at a time;
the tables here hold one entry per id, not per voxel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def match_overlap(
    a: np.ndarray, b: np.ndarray, *, threshold: float = 0.5, min_voxels: int = 1
) -> np.ndarray:
    """Pairs ``(id_a, id_b)`` of two labelings of the same region that denote one object.

    Parameters
    ----------
    a, b : ndarray of int
        Labels of the same voxels from two blocks; 0 is background and never matched.
    threshold : float
        Both ``n_ab / n_a`` and ``n_ab / n_b`` must exceed it, where ``n_ab`` counts the voxels
        labelled ``id_a`` in ``a`` and ``id_b`` in ``b``, and ``n_a``, ``n_b`` all voxels of each
        id in the region. In [0, 1); from 0.5 up an id matches at most one id.
    min_voxels : int
        Pairs sharing fewer voxels are ignored (noise at the edge of the overlap).

    Returns
    -------
    ndarray of int64, shape (k, 2)

    Examples
    --------
    >>> a = np.array([[1, 1, 1, 2, 2, 2]])
    >>> b = np.array([[5, 5, 5, 5, 7, 7]])  # 5 covers all of 1 and a third of 2
    >>> match_overlap(a, b).tolist()
    [[1, 5], [2, 7]]
    >>> match_overlap(a, b, threshold=0.7).tolist()  # 2 and 7 share 2 of its 3 voxels
    [[1, 5]]
    """
    if a.shape != b.shape:
        raise ValueError(f"overlap shapes differ: {a.shape} and {b.shape}")
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold {threshold} must be in [0, 1)")
    a = a.ravel().astype(np.int64)
    b = b.ravel().astype(np.int64)
    if a.size == 0:
        return np.zeros((0, 2), np.int64)
    size_a = np.bincount(a)
    size_b = np.bincount(b)
    both = (a > 0) & (b > 0)
    base = int(b.max()) + 1
    keys, shared = np.unique(a[both] * base + b[both], return_counts=True)
    ids_a, ids_b = keys // base, keys % base
    keep = (
        (shared >= min_voxels)
        & (shared > threshold * size_a[ids_a])
        & (shared > threshold * size_b[ids_b])
    )
    return np.stack([ids_a[keep], ids_b[keep]], axis=1)


def id_offsets(counts: Sequence[int]) -> np.ndarray:
    """First global id minus one of each block: block k's local id i becomes ``offset[k] + i``.

    Examples
    --------
    >>> id_offsets([3, 0, 2]).tolist()
    [0, 3, 3]
    """
    counts = np.asarray(counts, np.int64)
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


class UnionFind:
    """Disjoint sets over the ids ``0..size-1`` (array-based, path halving, union by size).

    Examples
    --------
    >>> sets = UnionFind(6)
    >>> sets.union(1, 2); sets.union(4, 2); sets.union(3, 5)
    >>> roots = sets.roots()
    >>> bool(roots[1] == roots[4]), bool(roots[1] == roots[3])
    (True, False)
    """

    def __init__(self, size: int) -> None:
        self.parent = np.arange(size, dtype=np.int64)
        self.size = np.ones(size, np.int64)

    def find(self, item: int) -> int:
        parent = self.parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = int(parent[item])
        return int(item)

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return
        if self.size[root_a] < self.size[root_b]:
            root_a, root_b = root_b, root_a
        self.parent[root_b] = root_a
        self.size[root_a] += self.size[root_b]

    def union_pairs(self, pairs: Iterable[tuple[int, int]] | np.ndarray) -> None:
        for a, b in np.asarray(pairs, np.int64).reshape(-1, 2):
            self.union(int(a), int(b))

    def roots(self) -> np.ndarray:
        """The root of every id (vectorised full path compression)."""
        roots = self.parent.copy()
        while True:
            up = roots[roots]
            if np.array_equal(up, roots):
                return roots
            roots = up


def final_ids(
    total: int, pairs: np.ndarray | Iterable[tuple[int, int]], present: np.ndarray
) -> np.ndarray:
    """Lookup table from global ids ``0..total`` to consecutive output ids ``0..N``.

    Parameters
    ----------
    total : int
        The largest global id.
    pairs : array of shape (k, 2)
        Global ids to merge.
    present : ndarray of int
        Global ids that have voxels in some block's core (ids seen only in a halo vanish).

    Returns
    -------
    ndarray of int64, shape (total + 1,)
        ``table[g]`` is the output id of global id ``g``: 0 for 0 and for absent ids, otherwise
        ``1..N`` numbered in the order of each merged object's smallest present id.

    Examples
    --------
    >>> final_ids(5, [(2, 4)], np.array([1, 2, 4, 5])).tolist()
    [0, 1, 2, 0, 2, 3]
    """
    sets = UnionFind(total + 1)
    sets.union_pairs(pairs)
    roots = sets.roots()
    present = np.unique(np.asarray(present, np.int64))
    present = present[(present > 0) & (present <= total)]
    table = np.zeros(total + 1, np.int64)
    if present.size == 0:
        return table
    # Objects in order of their smallest present id: the first occurrence of each root.
    _, first = np.unique(roots[present], return_index=True)
    order = np.argsort(first)
    number = np.zeros(total + 1, np.int64)
    number[roots[present][first[order]]] = np.arange(1, order.size + 1)
    table[present] = number[roots[present]]
    return table
