"""Tests for napari_emseg.metrics on tiny literal arrays with hand-worked answers."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
from skimage.metrics import adapted_rand_error as sk_adapted_rand_error

from napari_emseg.metrics import (
    adapted_rand_error,
    adapted_rand_scores,
    contingency_table,
    isbi2012_scores,
    variation_of_information,
)

# --------------------------------------------------------------------------------------------
# Naive reference implementations (voxel loops over Python Counters), independent of the
# sparse-table code, used to cross-check on random arrays.
# --------------------------------------------------------------------------------------------


def _naive_rand(seg: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    pairs: Counter = Counter()
    seg_sizes: Counter = Counter()
    gt_sizes: Counter = Counter()
    singleton = 0
    for s, g in zip(seg.ravel().tolist(), gt.ravel().tolist(), strict=True):
        if g == 0:
            continue
        gt_sizes[g] += 1
        if s == 0:
            singleton += 1  # its own segment of size 1
        else:
            pairs[(g, s)] += 1
            seg_sizes[s] += 1
    sum_n2 = sum(v * v for v in pairs.values()) + singleton
    sum_s2 = sum(v * v for v in seg_sizes.values()) + singleton
    sum_t2 = sum(v * v for v in gt_sizes.values())
    return sum_n2 / sum_s2, sum_n2 / sum_t2


def _naive_voi(seg: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    keep = gt.ravel() != 0
    s_list = seg.ravel()[keep].tolist()
    g_list = gt.ravel()[keep].tolist()
    n = len(s_list)

    def entropy(counter: Counter) -> float:
        return -sum(c / n * math.log2(c / n) for c in counter.values())

    h_st = entropy(Counter(zip(s_list, g_list, strict=True)))
    return h_st - entropy(Counter(g_list)), h_st - entropy(Counter(s_list))


# --------------------------------------------------------------------------------------------
# contingency_table
# --------------------------------------------------------------------------------------------


def test_contingency_table_literal() -> None:
    gt = np.array([1, 1, 7, 7, 0])
    seg = np.array([3, 5, 5, 5, 3])
    table = contingency_table(seg, gt)
    assert isinstance(table, sp.csr_matrix)
    # rows: gt labels 0, 1, 7; columns: seg labels 3, 5
    # gt 0 -> one voxel in seg 3; gt 1 -> one in 3, one in 5; gt 7 -> two in 5
    np.testing.assert_array_equal(table.toarray(), [[1, 0], [1, 1], [0, 2]])


def test_contingency_table_huge_uint64_labels_match_small_ones() -> None:
    gt = np.array([[1, 1, 2], [2, 0, 2]], dtype=np.uint8)
    seg = np.array([[4, 6, 6], [6, 4, 9]], dtype=np.int32)
    # Ids near 2**64 make the combined int64 key overflow and take the relabelling path.
    big = {4: 2**64 - 1, 6: 2**63 + 5, 9: 2**64 - 2}
    seg_big = np.vectorize(big.get, otypes=[np.uint64])(seg)
    gt_big = gt.astype(np.uint64) * np.uint64(2**62)
    small = contingency_table(seg, gt).toarray()
    # column order follows the sorted ids: 2**63 + 5 (was 6), 2**64 - 2 (was 9), 2**64 - 1 (was 4)
    np.testing.assert_array_equal(contingency_table(seg_big, gt_big).toarray(), small[:, [1, 2, 0]])
    np.testing.assert_array_equal(small, [[1, 0, 0], [1, 1, 0], [0, 2, 1]])


# --------------------------------------------------------------------------------------------
# Adapted Rand error and variation of information on literal arrays
# --------------------------------------------------------------------------------------------


def test_perfect_segmentation_and_relabelled_ids() -> None:
    gt = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 0]], dtype=np.uint16)
    perm = {0: 0, 1: 40, 2: 7, 3: 1_000_000}
    seg = np.vectorize(perm.get)(gt).astype(np.int64)
    for s in (gt, seg, seg.astype(np.uint64)):
        scores = adapted_rand_scores(s, gt)
        assert scores == {"are": 0.0, "precision": 1.0, "recall": 1.0}
        assert variation_of_information(s, gt) == (0.0, 0.0)


def test_split_one_object_into_two() -> None:
    gt = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    seg = np.array([1, 1, 2, 2, 3, 3, 3, 3])
    scores = adapted_rand_scores(seg, gt)
    # n_ij = 2, 2, 4 -> sum n^2 = 24; s_j = 2, 2, 4 -> 24; t_i = 4, 4 -> 32
    # P = 24/24 = 1, R = 24/32 = 0.75, ARE = 1 - 2*0.75/1.75 = 1/7
    assert scores["precision"] == pytest.approx(1.0)
    assert scores["recall"] == pytest.approx(0.75)
    assert scores["are"] == pytest.approx(1 / 7)
    assert adapted_rand_error(seg, gt) == pytest.approx(1 / 7)
    # gt 1 (half the voxels) is split 50/50 -> H(seg|gt) = 0.5 * 1 bit; no merge
    split, merge = variation_of_information(seg, gt)
    assert split == pytest.approx(0.5)
    assert merge == 0.0


def test_merge_two_objects_into_one() -> None:
    gt = np.array([1, 1, 2, 2, 3, 3, 3, 3])
    seg = np.array([5, 5, 5, 5, 6, 6, 6, 6])
    scores = adapted_rand_scores(seg, gt)
    # n_ij = 2, 2, 4 -> 24; s_j = 4, 4 -> 32; t_i = 2, 2, 4 -> 24
    # P = 24/32 = 0.75, R = 1, ARE = 1/7
    assert scores["precision"] == pytest.approx(0.75)
    assert scores["recall"] == pytest.approx(1.0)
    assert scores["are"] == pytest.approx(1 / 7)
    # seg 5 (half the voxels) holds gt 1 and 2 equally -> H(gt|seg) = 0.5 bit; no split
    split, merge = variation_of_information(seg, gt)
    assert split == 0.0
    assert merge == pytest.approx(0.5)


def test_uneven_split_voi_bits() -> None:
    gt = np.array([1, 1, 1, 1])
    seg = np.array([1, 2, 2, 2])
    # H(seg|gt) = -(1/4 log2 1/4 + 3/4 log2 3/4) = 0.5 + 0.311278... = 0.811278 bits
    split, merge = variation_of_information(seg, gt)
    assert split == pytest.approx(0.25 * 2 + 0.75 * math.log2(4 / 3))
    assert split == pytest.approx(0.8112781244591328)
    assert merge == 0.0


def test_volume_is_scored_as_a_whole_not_per_slice() -> None:
    gt = np.ones((2, 1, 2), dtype=np.uint8)  # one object through both slices
    seg = np.array([[[1, 1]], [[2, 2]]])  # split between the slices
    # per slice it would be perfect; over the volume: sum n^2 = 8, sum s^2 = 8, sum t^2 = 16
    # P = 1, R = 0.5, ARE = 1 - 1/1.5 = 1/3
    assert adapted_rand_error(seg, gt) == pytest.approx(1 / 3)
    assert variation_of_information(seg, gt) == pytest.approx((1.0, 0.0))


def test_gt_zero_voxels_are_ignored() -> None:
    gt = np.array([0, 0, 0, 1, 1, 2, 2])
    base = np.array([9, 9, 9, 1, 1, 1, 1])
    # scored part: gt (1, 1, 2, 2) vs seg (1, 1, 1, 1): P = 8/16 = 0.5, R = 1, ARE = 1/3
    expected = adapted_rand_scores(base, gt)
    assert expected["are"] == pytest.approx(1 / 3)
    for outside in ([0, 0, 0], [1, 2, 3], [1, 1, 1], [5, 0, 6]):
        seg = base.copy()
        seg[:3] = outside
        assert adapted_rand_scores(seg, gt) == pytest.approx(expected)
        assert variation_of_information(seg, gt) == pytest.approx((0.0, 1.0))


def test_seg_zero_voxels_are_singletons() -> None:
    gt = np.array([1, 1, 1, 1])
    seg = np.array([1, 1, 0, 0])
    scores = adapted_rand_scores(seg, gt)
    # seg 1: n = 2 -> 4; the two seg-0 voxels are singletons -> +1 +1
    # sum n^2 = 6, sum s^2 = 4 + 1 + 1 = 6, sum t^2 = 16
    # P = 1, R = 6/16 = 0.375, ARE = 1 - 0.75/1.375 = 5/11
    assert scores["precision"] == pytest.approx(1.0)
    assert scores["recall"] == pytest.approx(0.375)
    assert scores["are"] == pytest.approx(5 / 11)
    # seg 0 as an ordinary label would give R = 8/16 and ARE = 1/3 instead
    assert adapted_rand_error(np.array([1, 1, 2, 2]), gt) == pytest.approx(1 / 3)


def test_all_seg_zero_spanning_two_objects() -> None:
    gt = np.array([1, 1, 2, 2])
    seg = np.zeros(4, dtype=np.uint32)
    # four singletons: sum n^2 = 4, sum s^2 = 4, sum t^2 = 8 -> P = 1, R = 0.5, ARE = 1/3
    # (treating 0 as one label would have been a merge: P = 0.5, R = 1)
    scores = adapted_rand_scores(seg, gt)
    assert scores["precision"] == pytest.approx(1.0)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["are"] == pytest.approx(1 / 3)


def test_voi_seg_zero_is_an_ordinary_label() -> None:
    gt = np.array([1, 1, 1, 1])
    seg = np.array([0, 0, 1, 1])
    # a 50/50 split of the only object: 1 bit
    assert variation_of_information(seg, gt) == pytest.approx((1.0, 0.0))


def test_voi_without_ignoring_gt_zero() -> None:
    gt = np.array([0, 0, 1, 1])
    seg = np.array([3, 3, 3, 3])
    assert variation_of_information(seg, gt) == (0.0, 0.0)
    # gt 0 now a label: seg 3 holds gt 0 and gt 1 half and half -> merge = 1 bit
    split, merge = variation_of_information(seg, gt, ignore_gt_zero=False)
    assert split == 0.0
    assert merge == pytest.approx(1.0)


def test_matches_naive_reference_on_random_arrays() -> None:
    rng = np.random.default_rng(1)
    for _ in range(3):
        gt = rng.integers(0, 5, size=(6, 7, 8))
        seg = rng.integers(0, 6, size=(6, 7, 8)).astype(np.uint32)  # includes seg 0
        scores = adapted_rand_scores(seg, gt)
        p, r = _naive_rand(seg, gt)
        assert scores["precision"] == pytest.approx(p, rel=1e-12)
        assert scores["recall"] == pytest.approx(r, rel=1e-12)
        assert scores["are"] == pytest.approx(1 - 2 * p * r / (p + r), rel=1e-12)
        assert variation_of_information(seg, gt) == pytest.approx(_naive_voi(seg, gt))


def test_agrees_with_skimage_when_seg_has_no_zero() -> None:
    rng = np.random.default_rng(0)
    # independent labels: P ~ sum of squared gt fractions (0.25), R ~ 0.9^2 + 2 * 0.05^2
    gt = rng.choice(5, size=(200, 200))
    seg = rng.choice([1, 2, 3], size=(200, 200), p=[0.9, 0.05, 0.05])
    ours = adapted_rand_scores(seg, gt)
    sk_are, sk_prec, sk_rec = sk_adapted_rand_error(gt, seg)
    # skimage counts pairs n(n-1) instead of n^2 (a relative change of ~1e-4 at this size) and
    # swaps the names: its "precision" divides by the gt sizes, i.e. it is our recall.
    assert ours["precision"] == pytest.approx(sk_rec, rel=1e-3)
    assert ours["recall"] == pytest.approx(sk_prec, rel=1e-3)
    assert ours["are"] == pytest.approx(sk_are, rel=1e-3)
    assert abs(ours["precision"] - ours["recall"]) > 0.5  # so the swap above is meaningful


def test_errors() -> None:
    gt = np.array([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="same shape"):
        adapted_rand_error(np.ones((2, 3), dtype=int), gt)
    with pytest.raises(ValueError, match="same shape"):
        variation_of_information(np.ones(4, dtype=int), gt)
    with pytest.raises(ValueError, match="same shape"):
        contingency_table(np.ones(4, dtype=int), gt)
    with pytest.raises(ValueError, match="ground truth has no labelled voxels"):
        adapted_rand_scores(gt, np.zeros_like(gt))
    with pytest.raises(ValueError, match="ground truth has no labelled voxels"):
        variation_of_information(gt, np.zeros_like(gt))
    with pytest.raises(ValueError, match="negative"):
        adapted_rand_error(-gt, gt)
    with pytest.raises(TypeError, match="integer"):
        adapted_rand_error(gt.astype(float), gt)


# --------------------------------------------------------------------------------------------
# ISBI 2012
# --------------------------------------------------------------------------------------------


def _two_cells() -> np.ndarray:
    """5x7 binary ISBI-style gt: two 5x3 cells split by a membrane column (0) at x = 3."""
    gt = np.full((5, 7), 255, dtype=np.uint8)
    gt[:, 3] = 0
    return gt


def test_isbi_perfect_map_scores_one() -> None:
    gt = np.full((9, 9), 255, dtype=np.uint8)
    gt[4, :] = 0
    gt[:, 4] = 0  # four cells around a cross junction
    prob = (gt == 0).astype(np.float64)
    scores = isbi2012_scores(prob, gt)
    assert scores["vrand"] == pytest.approx(1.0)
    assert scores["vinfo"] == pytest.approx(1.0)
    assert scores["pixel_error"] == 0.0
    assert scores["vrand_threshold"] == pytest.approx(0.05)  # first of the ties


def test_isbi_missed_membrane_merges_two_cells() -> None:
    gt = _two_cells()
    prob = (gt == 0).astype(np.float64)
    prob[2, 3] = 0.0  # a gap in the membrane joins the two cells at every threshold
    scores = isbi2012_scores(prob, gt)
    # scored pixels: the 30 cell pixels (the 1-pixel gt line stays 0); one predicted segment
    # holding 15 + 15 -> sum n^2 = 450, sum s^2 = 900, sum t^2 = 450
    # P = 0.5, R = 1 -> V_rand = 2 * 0.5 / 1.5 = 2/3
    assert scores["vrand"] == pytest.approx(2 / 3)
    assert scores["vrand"] < 1.0
    # H(S) = 0 -> info precision 1; I(S;T) = 0, H(T) = 1 bit -> recall 0 -> V_info = 0
    assert scores["vinfo"] == pytest.approx(0.0)
    # one membrane pixel called background out of 35
    assert scores["pixel_error"] == pytest.approx(1 / 35)


def test_isbi_best_threshold_and_split_values() -> None:
    gt = _two_cells()
    prob = (gt == 0).astype(np.float64)
    prob[2, :3] = 0.4  # a faint false membrane across the left cell
    # thresholds <= 0.4 cut the left cell into 6 + 6 pixels plus a 3-pixel line of singletons
    low = isbi2012_scores(prob, gt, thresholds=[0.1, 0.3])
    # n = 6, 6, 1, 1, 1, 15 -> sum n^2 = sum s^2 = 300; t = 15, 15 -> 450
    # P = 1, R = 300/450 = 2/3 -> V_rand = 2 * (2/3) / (5/3) = 0.8
    assert low["vrand"] == pytest.approx(0.8)
    # every segment lies in one cell: I = H(T) = 1 bit, recall 1, precision 1 / H(S) with
    # H(S) = 2 * 0.2 log2 5 + 3 * (1/30) log2 30 + 0.5 log2 2
    h_s = 0.4 * math.log2(5) + 0.1 * math.log2(30) + 0.5
    info_p = 1 / h_s
    assert low["vinfo"] == pytest.approx(2 * info_p / (1 + info_p))
    assert low["vinfo"] == pytest.approx(0.685058, abs=1e-6)
    # from 0.45 on the faint line is foreground: perfect, and 0.45 is the first such threshold
    best = isbi2012_scores(prob, gt)
    assert best["vrand"] == pytest.approx(1.0)
    assert best["vrand_threshold"] == pytest.approx(0.45)
    assert best["vinfo_threshold"] == pytest.approx(0.45)
    assert best["pixel_error"] == 0.0  # 0.4 < 0.5 is background, as in the gt


def test_isbi_3d_averages_over_slices() -> None:
    gt = np.stack([_two_cells(), _two_cells()])
    prob = (gt == 0).astype(np.float64)
    prob[1, 2, 3] = 0.0  # slice 0 perfect, slice 1 merged (see the test above)
    scores = isbi2012_scores(prob, gt)
    assert scores["vrand"] == pytest.approx((1.0 + 2 / 3) / 2)  # 5/6
    assert scores["vinfo"] == pytest.approx((1.0 + 0.0) / 2)
    assert scores["pixel_error"] == pytest.approx(1 / 70)  # 1 wrong pixel of 70


def test_isbi_binary_and_instance_gt_agree() -> None:
    binary = _two_cells()
    instance = np.zeros((5, 7), dtype=np.uint16)
    instance[:, :3] = 3
    instance[:, 4:] = 8
    for prob in (
        (binary == 0).astype(np.float64),
        np.where(binary == 0, 1.0, np.linspace(0.0, 0.6, 35).reshape(5, 7)),
    ):
        prob[2, 3] = 0.2
        assert isbi2012_scores(prob, instance) == isbi2012_scores(prob, binary)
        assert isbi2012_scores(prob, binary == 255) == isbi2012_scores(prob, binary)


def test_isbi_errors() -> None:
    gt = _two_cells()
    with pytest.raises(ValueError, match="same shape"):
        isbi2012_scores(np.zeros((5, 6)), gt)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        isbi2012_scores(np.full((5, 7), 255.0), gt)
    with pytest.raises(ValueError, match="no labelled objects"):
        isbi2012_scores(np.zeros((5, 7)), np.zeros((5, 7), dtype=np.uint8))
