"""Segmentation metrics for EM neuron segmentation.

Three families of scores, all computed from a sparse contingency table of
(ground-truth label, predicted label) voxel counts:

- :func:`adapted_rand_error` / :func:`adapted_rand_scores`: the SNEMI3D adapted Rand error
  over a whole (3D) volume.
- :func:`variation_of_information`: split / merge conditional entropies in bits.
- :func:`isbi2012_scores`: the ISBI 2012 2D protocol (V_rand, V_info after border thinning,
  best over thresholds, pixel error) for a membrane probability map.

Only numpy and scipy are needed, except for :func:`isbi2012_scores`, which imports
``skimage.segmentation.watershed`` when it is called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import scipy.sparse as sp
from scipy import ndimage as ndi

__all__ = [
    "adapted_rand_error",
    "adapted_rand_scores",
    "contingency_table",
    "isbi2012_scores",
    "variation_of_information",
]

_INT64_MAX = np.iinfo(np.int64).max
# 4-connectivity in 2D, used for both the component labelling and the watershed.
_CONN4 = ndi.generate_binary_structure(2, 1)


# --------------------------------------------------------------------------------------------
# Contingency table
# --------------------------------------------------------------------------------------------


def _check_labels(arr: np.ndarray, name: str) -> np.ndarray:
    """Return ``arr`` as an ndarray of non-negative integer labels, or raise."""
    arr = np.asarray(arr)
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer label array, got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError(f"{name} contains negative labels; labels must be >= 0")
    return arr


def _check_pair(seg: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seg = _check_labels(seg, "seg")
    gt = _check_labels(gt, "gt")
    if seg.shape != gt.shape:
        raise ValueError(
            f"seg and gt must have the same shape, got seg {seg.shape} and gt {gt.shape}"
        )
    return seg, gt


def _pair_counts(seg: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count the voxels of every (gt label, seg label) pair that occurs.

    Returns the gt labels, seg labels and counts of the non-empty pairs, sorted by gt label
    then seg label. Inputs must be validated label arrays of the same shape.
    """
    s = seg.ravel()
    g = gt.ravel()
    if s.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    smax = int(s.max())
    gmax = int(g.max())
    if (gmax + 1) * (smax + 1) - 1 <= _INT64_MAX:
        # Fast path: one int64 key per voxel and a single sort. This avoids the per-voxel
        # np.unique(return_inverse) (an argsort, ~10x slower) and any dense n x n table.
        width = smax + 1
        key = g.astype(np.int64) * width
        key += s.astype(np.int64, copy=False)  # uint64 + int64 would promote to float
        uniq, counts = np.unique(key, return_counts=True)
        return uniq // width, uniq % width, counts
    # Huge label values (e.g. uint64 ids near 2**63): relabel to 0..n-1 first so the key fits.
    # unique + searchsorted is ~3x faster than np.unique(return_inverse), which argsorts.
    g_lab = np.unique(g)
    s_lab = np.unique(s)
    g_idx = np.searchsorted(g_lab, g)
    s_idx = np.searchsorted(s_lab, s)
    key = g_idx.astype(np.int64) * s_lab.size + s_idx
    uniq, counts = np.unique(key, return_counts=True)
    return g_lab[uniq // s_lab.size], s_lab[uniq % s_lab.size], counts


def contingency_table(seg: np.ndarray, gt: np.ndarray) -> sp.csr_matrix:
    """Sparse contingency table of ground-truth versus predicted labels.

    Parameters
    ----------
    seg : ndarray of int
        Predicted label image (any shape, any non-negative integer or bool dtype).
    gt : ndarray of int
        Ground-truth label image, same shape as `seg`.

    Returns
    -------
    table : scipy.sparse.csr_matrix of int64
        ``table[i, j]`` is the number of voxels with ground-truth label ``np.unique(gt)[i]``
        and predicted label ``np.unique(seg)[j]``. Labels are compressed to their sorted
        unique values, so ids need not be consecutive and label 0 is an ordinary row/column.

    Raises
    ------
    ValueError
        If the shapes differ or a label is negative.
    TypeError
        If an input is not an integer (or bool) array.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([1, 1, 7, 7])
    >>> seg = np.array([3, 5, 5, 5])
    >>> contingency_table(seg, gt).toarray()
    array([[1, 1],
           [0, 2]])
    """
    seg, gt = _check_pair(seg, gt)
    g_pairs, s_pairs, counts = _pair_counts(seg, gt)
    # Compressing the (few) pair labels is cheap; the per-voxel work was done above.
    g_lab, rows = np.unique(g_pairs, return_inverse=True)
    s_lab, cols = np.unique(s_pairs, return_inverse=True)
    return sp.csr_matrix((counts.astype(np.int64), (rows, cols)), shape=(g_lab.size, s_lab.size))


# --------------------------------------------------------------------------------------------
# Scores from pair counts
# --------------------------------------------------------------------------------------------


def _marginal(labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sum ``counts`` per distinct value of ``labels`` (float64)."""
    _, inv = np.unique(labels, return_inverse=True)
    return np.bincount(inv, weights=counts)


def _rand_pr(g: np.ndarray, s: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Rand precision and recall; seg label 0 voxels count as singletons.

    Float64 sums: squared counts of a large volume can overflow int64.
    """
    c = counts.astype(np.float64)
    single = s == 0
    regular = ~single
    n_single = c[single].sum()
    sum_n2 = np.dot(c[regular], c[regular]) + n_single
    s_sizes = _marginal(s[regular], c[regular])
    sum_s2 = np.dot(s_sizes, s_sizes) + n_single
    t_sizes = _marginal(g, c)
    sum_t2 = np.dot(t_sizes, t_sizes)
    return float(sum_n2 / sum_s2), float(sum_n2 / sum_t2)


def _plogp(c: np.ndarray, n: float) -> float:
    """Entropy contribution ``-sum p log2 p`` of the counts ``c`` out of ``n``."""
    p = c / n
    return float(-np.dot(p, np.log2(p)))


def _entropies(
    g: np.ndarray, s: np.ndarray, counts: np.ndarray, *, seg_zero_singletons: bool
) -> tuple[float, float, float]:
    """Entropies H(T), H(S), H(S, T) in bits (T = gt, S = seg) from pair counts."""
    c = counts.astype(np.float64)
    n = c.sum()
    h_t = _plogp(_marginal(g, c), n)
    if seg_zero_singletons:
        single = s == 0
        regular = ~single
        # k singleton segments of one voxel each add k * (1/n) * log2(n) to H(S) and H(S, T).
        h_single = c[single].sum() / n * np.log2(n)
        h_s = _plogp(_marginal(s[regular], c[regular]), n) + h_single
        h_st = _plogp(c[regular], n) + h_single
    else:
        h_s = _plogp(_marginal(s, c), n)
        h_st = _plogp(c, n)
    return h_t, h_s, h_st


def _f_score(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)


# --------------------------------------------------------------------------------------------
# Adapted Rand error (SNEMI3D)
# --------------------------------------------------------------------------------------------


def adapted_rand_scores(seg: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """SNEMI3D adapted Rand error with its precision and recall.

    Computed over the whole array (a 3D volume is scored as one volume, not per slice).
    With ``n_ij`` the number of voxels in ground-truth object ``i`` and predicted segment
    ``j``, ``t_i = sum_j n_ij`` and ``s_j = sum_i n_ij``::

        P = sum n_ij**2 / sum s_j**2        (precision)
        R = sum n_ij**2 / sum t_i**2        (recall)
        ARE = 1 - 2 P R / (P + R)

    - Voxels where ``gt == 0`` are ignored.
    - Voxels where ``seg == 0`` (and ``gt != 0``) are singletons: each is its own segment, so
      each adds 1 to ``sum n_ij**2`` and 1 to ``sum s_j**2``. Unlabelled voxels therefore
      count as splits.

    Parameters
    ----------
    seg : ndarray of int
        Predicted labels, 0 = unlabelled.
    gt : ndarray of int
        Ground-truth labels, 0 = ignored; same shape as `seg`.

    Returns
    -------
    scores : dict
        ``"are"`` (0 is perfect, lower is better), ``"precision"`` and ``"recall"``
        (1 is perfect). Low precision means merges, low recall means splits.

    Raises
    ------
    ValueError
        If the shapes differ, a label is negative, or `gt` has no non-zero voxel.

    Notes
    -----
    This follows the SNEMI3D challenge definition (Arganda-Carreras et al. 2015,
    Front. Neuroanat. 9:142). Two widely used implementations differ:

    - PyTorch Connectomics ``adapted_rand`` adds ``c / n`` instead of ``c`` for the ``c``
      seg-0 voxels (``n`` = total voxel count) to both sums. The two agree when `seg` has no
      0 inside the ground-truth foreground.
    - ``skimage.metrics.adapted_rand_error`` treats seg 0 as an ordinary label, counts
      pairs (``n * (n - 1)``) rather than ``n**2``, and calls our recall its "precision"
      and our precision its "recall".

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    >>> seg = np.array([1, 1, 2, 2, 3, 3, 3, 3])  # gt object 1 split in two
    >>> s = adapted_rand_scores(seg, gt)
    >>> s["precision"], s["recall"], round(s["are"], 4)  # R = 24 / 32
    (1.0, 0.75, 0.1429)
    """
    seg, gt = _check_pair(seg, gt)
    g, s, counts = _pair_counts(seg, gt)
    fg = g != 0
    if not fg.any():
        raise ValueError(
            "ground truth has no labelled voxels (gt is 0 everywhere); the adapted Rand "
            "error is undefined"
        )
    precision, recall = _rand_pr(g[fg], s[fg], counts[fg])
    return {"are": 1.0 - _f_score(precision, recall), "precision": precision, "recall": recall}


def adapted_rand_error(seg: np.ndarray, gt: np.ndarray) -> float:
    """SNEMI3D adapted Rand error (0 is perfect, lower is better).

    Shorthand for ``adapted_rand_scores(seg, gt)["are"]``; see :func:`adapted_rand_scores`
    for the definition (gt 0 ignored, seg 0 voxels counted as singletons) and how it differs
    from PyTorch Connectomics and scikit-image.

    Parameters
    ----------
    seg : ndarray of int
        Predicted labels, 0 = unlabelled.
    gt : ndarray of int
        Ground-truth labels, 0 = ignored; same shape as `seg`.

    Returns
    -------
    are : float
        ``1 - 2 P R / (P + R)``.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([0, 1, 1, 2, 2])
    >>> adapted_rand_error(np.array([9, 4, 4, 8, 8]), gt)
    0.0
    """
    return adapted_rand_scores(seg, gt)["are"]


# --------------------------------------------------------------------------------------------
# Variation of information
# --------------------------------------------------------------------------------------------


def variation_of_information(
    seg: np.ndarray, gt: np.ndarray, *, ignore_gt_zero: bool = True
) -> tuple[float, float]:
    """Variation of information split into its split and merge parts, in bits.

    ``split = H(seg | gt)`` (over-segmentation: one gt object spread over several segments)
    and ``merge = H(gt | seg)`` (under-segmentation: one segment covering several gt objects).
    ``split + merge`` is the variation of information. Here seg 0 is an ordinary label.

    Parameters
    ----------
    seg : ndarray of int
        Predicted labels.
    gt : ndarray of int
        Ground-truth labels, same shape as `seg`.
    ignore_gt_zero : bool, optional
        If True (default), voxels where ``gt == 0`` are excluded; otherwise gt 0 is an
        ordinary label.

    Returns
    -------
    split, merge : float
        Conditional entropies in bits (0 is perfect).

    Raises
    ------
    ValueError
        If the shapes differ, a label is negative, or no voxel is left to score.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    >>> seg = np.array([1, 1, 2, 2, 3, 3, 3, 3])  # half the voxels: a 50/50 split (1 bit)
    >>> variation_of_information(seg, gt)
    (0.5, 0.0)
    """
    seg, gt = _check_pair(seg, gt)
    g, s, counts = _pair_counts(seg, gt)
    if ignore_gt_zero:
        keep = g != 0
        g, s, counts = g[keep], s[keep], counts[keep]
    if counts.size == 0:
        raise ValueError("ground truth has no labelled voxels to score")
    h_t, h_s, h_st = _entropies(g, s, counts, seg_zero_singletons=False)
    # Clip the round-off that can make a zero conditional entropy come out as -1e-16.
    return max(h_st - h_t, 0.0), max(h_st - h_s, 0.0)


# --------------------------------------------------------------------------------------------
# ISBI 2012 protocol
# --------------------------------------------------------------------------------------------


def _default_thresholds() -> np.ndarray:
    # Built from integers so the values are exactly 0.05, 0.10, ..., 0.95 after rounding.
    return np.round(np.arange(1, 20) * 0.05, 2)


def _isbi_slice_scores(pred: np.ndarray, gt_thin: np.ndarray) -> tuple[float, float]:
    """V_rand and V_info of one slice, restricted to the thinned gt foreground."""
    g, s, counts = _pair_counts(pred, gt_thin)
    fg = g != 0
    g, s, counts = g[fg], s[fg], counts[fg]
    precision, recall = _rand_pr(g, s, counts)
    v_rand = _f_score(precision, recall)
    h_t, h_s, h_st = _entropies(g, s, counts, seg_zero_singletons=True)
    mutual = h_s + h_t - h_st
    info_p = mutual / h_s if h_s > 0 else 1.0
    info_r = mutual / h_t if h_t > 0 else 1.0
    return v_rand, _f_score(info_p, info_r)


def isbi2012_scores(
    membrane_prob: np.ndarray,
    gt: np.ndarray,
    *,
    thresholds: Iterable[float] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, float]:
    """ISBI 2012 challenge scores (V_rand, V_info, pixel error) of a membrane map.

    This is our reading of the protocol in Arganda-Carreras et al. 2015, "Crowdsourcing the
    creation of image segmentation algorithms for connectomics", Front. Neuroanat. 9:142,
    and its Fiji evaluation script; it is not a port of that script.

    Every 2D slice is scored on its own:

    1. Ground truth. If `gt` holds exactly two distinct values it is a binary boundary map
       (the lower value = membrane, as in ISBI's 0/255 labels) and the objects are the
       4-connected components of the non-membrane pixels of each slice. Otherwise it is an
       instance label image with 0 = boundary, used as is. The gt boundary is then thinned:
       a watershed (4-connected, ``watershed_line=True``) grows the objects into the boundary
       on a flat image (objects 0, boundary 1), so only one-pixel lines remain as 0.
    2. Prediction, for each threshold ``t``: foreground = ``membrane_prob < t``; objects =
       its 4-connected components; border thinning = watershed of ``membrane_prob`` with the
       components as markers and ``watershed_line=True``.
    3. Scores are foreground-restricted: only pixels where the thinned gt is non-zero count,
       and predicted 0 pixels (the thin lines) count as singletons. With the Rand precision
       ``P`` and recall ``R`` of :func:`adapted_rand_scores`, ``V_rand = 2PR / (P + R)``.
       ``V_info = 2PR / (P + R)`` with the information-theoretic precision
       ``P = I(S; T) / H(S)`` and recall ``R = I(S; T) / H(T)`` (S = prediction, T = gt,
       entropies in bits over the restricted pixels; a ratio whose denominator is 0 is 1).

    Each score is averaged over the slices (slices without any gt object are skipped), and
    the best (maximum) mean over the thresholds is reported with its threshold (the lowest
    such threshold on ties). Because prediction and gt are thinned the same way, a perfect
    map (1 exactly on the gt boundary, 0 elsewhere) scores 1.

    Parameters
    ----------
    membrane_prob : ndarray of float, shape (Y, X) or (Z, Y, X)
        Membrane probability in [0, 1], 1 = membrane. (ISBI submissions use the opposite
        polarity, P(not membrane): pass ``1 - submission``.)
    gt : ndarray, same shape as `membrane_prob`
        Binary boundary map (two distinct values, the lower = membrane) or instance labels
        (non-negative integers, 0 = boundary).
    thresholds : iterable of float, optional
        Membrane thresholds to try. Default ``0.05, 0.10, ..., 0.95``.
    progress : callable, optional
        Called as ``progress(done, total, message)`` after each slice.

    Returns
    -------
    scores : dict
        ``"vrand"``, ``"vinfo"`` (best mean F-scores, 1 is perfect), ``"vrand_threshold"``,
        ``"vinfo_threshold"`` (the thresholds that achieved them) and ``"pixel_error"`` (the
        fraction of pixels where ``membrane_prob >= 0.5`` disagrees with the unthinned gt
        boundary, over all slices).

    Raises
    ------
    ValueError
        If the shapes differ, the input is not 2D or 3D, `membrane_prob` leaves [0, 1],
        `thresholds` is empty, or `gt` has no object in any slice.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.full((5, 7), 255, dtype=np.uint8)
    >>> gt[:, 3] = 0  # two cells split by a vertical membrane
    >>> prob = (gt == 0).astype(float)
    >>> s = isbi2012_scores(prob, gt)
    >>> s["vrand"], s["vinfo"], s["pixel_error"]
    (1.0, 1.0, 0.0)
    """
    from skimage.segmentation import watershed  # lazy: only this metric needs skimage

    prob = np.asarray(membrane_prob, dtype=np.float64)
    gt = np.asarray(gt)
    if prob.shape != gt.shape:
        raise ValueError(
            f"membrane_prob and gt must have the same shape, got {prob.shape} and {gt.shape}"
        )
    if prob.ndim not in (2, 3):
        raise ValueError(f"expected a 2D (Y, X) or 3D (Z, Y, X) array, got shape {prob.shape}")
    if prob.size == 0:
        raise ValueError("membrane_prob is empty")
    if not (np.all(np.isfinite(prob)) and prob.min() >= 0.0 and prob.max() <= 1.0):
        raise ValueError("membrane_prob must be finite and within [0, 1] (1 = membrane)")
    ts = _default_thresholds() if thresholds is None else np.asarray(list(thresholds), float)
    if ts.size == 0:
        raise ValueError("thresholds must not be empty")
    if prob.ndim == 2:
        prob, gt = prob[None], gt[None]

    values = np.unique(gt)
    binary = values.size == 2
    if binary:
        membrane = gt == values[0]
        objects = np.zeros(gt.shape, dtype=np.int32)
        for z in range(gt.shape[0]):
            objects[z] = ndi.label(~membrane[z], structure=_CONN4)[0]
    else:
        objects = _check_labels(gt, "gt")
        membrane = objects == 0

    n_z = prob.shape[0]
    vrand = np.zeros((n_z, ts.size))
    vinfo = np.zeros((n_z, ts.size))
    scored = np.zeros(n_z, dtype=bool)
    for z in range(n_z):
        if objects[z].any():
            scored[z] = True
            gt_thin = watershed(
                membrane[z].astype(np.float64),
                markers=objects[z],
                connectivity=1,
                watershed_line=True,
            )
            for k, t in enumerate(ts):
                comps, n_comps = ndi.label(prob[z] < t, structure=_CONN4)
                if n_comps == 0:
                    pred = comps  # no foreground: every pixel is a singleton
                else:
                    pred = watershed(prob[z], markers=comps, connectivity=1, watershed_line=True)
                vrand[z, k], vinfo[z, k] = _isbi_slice_scores(pred, gt_thin)
        if progress is not None:
            progress(z + 1, n_z, f"ISBI 2012 scores: slice {z + 1}/{n_z}")
    if not scored.any():
        raise ValueError("ground truth has no labelled objects in any slice")

    mean_rand = vrand[scored].mean(axis=0)
    mean_info = vinfo[scored].mean(axis=0)
    best_rand = int(np.argmax(mean_rand))  # argmax takes the first (lowest) on ties
    best_info = int(np.argmax(mean_info))
    return {
        "vrand": float(mean_rand[best_rand]),
        "vinfo": float(mean_info[best_info]),
        "vrand_threshold": float(ts[best_rand]),
        "vinfo_threshold": float(ts[best_info]),
        "pixel_error": float(np.mean((prob >= 0.5) != membrane)),
    }


def slice_components(binary_gt: np.ndarray) -> np.ndarray:
    """Per-slice 2D objects of a binary boundary map (the lower value is membrane), ids unique
    over the stack: instance ground truth for maps like ISBI 2012's 0 / 255 labels.

    Examples
    --------
    >>> slice_components(np.array([[[255, 0, 255]], [[255, 255, 0]]])).tolist()
    [[[1, 0, 2]], [[3, 3, 0]]]
    """
    from scipy import ndimage as ndi

    binary_gt = np.asarray(binary_gt)
    foreground = binary_gt > binary_gt.min()
    stack = foreground if foreground.ndim == 3 else foreground[None]
    out = np.zeros(stack.shape, np.uint32)
    offset = 0
    for z, plane in enumerate(stack):
        labels, n = ndi.label(plane)
        out[z] = np.where(labels > 0, labels + offset, 0)
        offset += n
    return out.reshape(binary_gt.shape)
