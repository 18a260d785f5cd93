"""The merge tree in rounds of reciprocal lowest pairs against one merge at a time."""

import heapq

import numpy as np
import pytest

from napari_emseg.segmentation.agglomeration import merge_tree


def _one_at_a_time(first, second, sums, counts, n, limit):
    """The lowest pair merged first, its faces pooled, until none is below ``limit``: the
    partition of fragments 0..n into regions (a reference written for clarity, not speed)."""
    faces = {}
    for a, b, s, c in zip(
        first.tolist(), second.tolist(), sums.tolist(), counts.tolist(), strict=True
    ):
        faces[(a, b)] = [s, c]
    region = list(range(n + 1))
    heights = []
    while True:
        below = [(s / c, pair) for pair, (s, c) in faces.items() if s / c < limit]
        if not below:
            break
        height, (a, b) = heapq.nsmallest(1, below)[0]
        heights.append(height)
        region = [a if r == b else r for r in region]
        pooled: dict = {}
        for (x, y), (s, c) in faces.items():
            x, y = (a if x == b else x), (a if y == b else y)
            if x != y:
                key = (min(x, y), max(x, y))
                total = pooled.setdefault(key, [0.0, 0])
                total[0] += s
                total[1] += c
        faces = pooled
    return np.array(region), heights


def _same_partition(one: np.ndarray, other: np.ndarray) -> bool:
    pairs = np.unique(np.stack([one, other]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def _random_graph(seed: int, n: int = 40):
    """A planar-like graph of fragments on a grid with distinct face means (no ties)."""
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(n))
    ids = np.arange(1, side * side + 1).reshape(side, side)
    pairs = [(ids[i, j], ids[i, j + 1]) for i in range(side) for j in range(side - 1)]
    pairs += [(ids[i, j], ids[i + 1, j]) for i in range(side - 1) for j in range(side)]
    first, second = np.array(pairs).T
    counts = rng.integers(1, 20, first.size)
    sums = rng.random(first.size) * counts
    return first, second, sums, counts, side * side


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("limit", [0.3, 0.6, 2.0])
def test_rounds_find_the_merges_and_heights_of_one_merge_at_a_time(seed, limit):
    first, second, sums, counts, n = _random_graph(seed)
    tree = merge_tree(first, second, sums, counts, n, limit)
    regions, heights = _one_at_a_time(first, second, sums, counts, n, limit)
    assert np.allclose(tree.height, heights)
    assert _same_partition(tree.table(limit), regions)
    for cut in np.linspace(0.0, limit, 7)[1:-1]:  # every lower threshold from the same tree
        assert _same_partition(
            tree.table(cut), _one_at_a_time(first, second, sums, counts, n, cut)[0]
        )


def test_no_pair_below_the_limit_merges_nothing():
    tree = merge_tree(np.array([1]), np.array([2]), np.array([0.9]), np.array([1]), 2, 0.5)
    assert tree.first.size == 0 and tree.table(1.0).tolist() == [0, 1, 2]
