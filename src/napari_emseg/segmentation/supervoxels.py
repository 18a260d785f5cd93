"""3D consistency from the membrane map: supervoxels take the id their propagated voxels vote for.

A propagator decides slice by slice which object is where; its outlines follow each slice's
membrane map on its own, so they jitter through z. Supervoxels of the membrane map (a 3D
watershed, optionally agglomerated by the mean membrane value on their shared faces, as waterz
does with its mean-affinity merge function) follow the membranes in 3D. Each supervoxel then
takes the id that most of its voxels were given (majority by voxel count): the propagator
decides *which* object, the supervoxels decide *where* its outline runs.

Supervoxels are 3D for near-isotropic voxels (FIB-SEM) and 2D per slice for thick sections
(ssTEM): on 50 nm sections a 3D watershed of a slice-by-slice membrane map links pieces of
different neurites, and the vote then raised the error instead of lowering it.

Pure NumPy / SciPy / scikit-image, no waterz. Measured in docs/results/supervoxel-vote.md.
"""

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from skimage.morphology import local_minima
from skimage.segmentation import watershed

from napari_emseg.segmentation.agglomeration import MergeTree, merge_keeping_apart, merge_tree

# Smoothing (in-plane pixels) of the map before the watershed, and mean membrane value on a
# shared face below which two supervoxels merge (0 = no merging), for 3D and for per-slice
# supervoxels: chosen on training data (3D: gala's train block; per slice: ISBI slices 0-19),
# see docs/results/supervoxel-vote.md.
DEFAULT_SIGMA_3D, DEFAULT_THRESHOLD_3D = 0.5, 0.6
DEFAULT_SIGMA_2D, DEFAULT_THRESHOLD_2D = 1.0, 0.3
# Sections this many times thicker than the pixel size count as anisotropic: supervoxels are
# then made in 2D per slice, since a 3D watershed cannot follow a membrane that moves more than
# its own width from one section to the next. 4 lies between the ratios estimated from the
# membrane maps of gala's FIB-SEM (1.5-1.9) and of ISBI's ssTEM (10-11).
ANISOTROPY_LIMIT = 4


def _voxel_size(voxel_size: Iterable[float] | None) -> np.ndarray:
    if voxel_size is None:
        return np.ones(3)
    size = np.asarray([float(v) for v in voxel_size])
    if size.shape != (3,) or not (size > 0).all():
        raise ValueError(f"voxel_size must be three positive sizes (z, y, x), got {voxel_size}")
    return size


def membrane_anisotropy(membrane: np.ndarray, *, max_shift: int = 16) -> float:
    """How many pixels in-plane one section step of ``membrane`` is worth (about z / xy size).

    The mean absolute change of the map from one slice to the next is matched against its mean
    change under in-plane shifts of 1, 2, ... pixels. Sections as thick as a pixel change the
    map about as much as a 1 px shift; ssTEM's 50 nm sections on 4 nm pixels measured 10-11 on
    ISBI 2012 and 10 nm FIB-SEM 1.5-1.9 on gala's blocks (docs/results/supervoxel-vote.md).
    Returns 1.0 for a single slice and ``max_shift`` at most.

    Examples
    --------
    >>> blobs = ndi.gaussian_filter(np.random.default_rng(0).random((48, 48, 48)), 4)
    >>> round(membrane_anisotropy(blobs), 1), round(membrane_anisotropy(blobs[::4]), 1)
    (0.9, 3.7)
    """
    membrane = np.asarray(membrane, np.float32)
    if membrane.shape[0] < 2:
        return 1.0
    step = float(np.mean(np.abs(np.diff(membrane, axis=0))))
    shifts = np.arange(1, min(max_shift, *membrane.shape[1:]))
    if shifts.size == 0:
        return 1.0
    change = np.array(
        [
            0.5 * np.mean(np.abs(membrane[:, k:] - membrane[:, :-k]))
            + 0.5 * np.mean(np.abs(membrane[:, :, k:] - membrane[:, :, :-k]))
            for k in shifts
        ]
    )
    if step <= change[0]:
        return float(step / change[0]) if change[0] > 0 else 1.0
    return float(np.interp(step, np.maximum.accumulate(change), shifts))


def is_anisotropic(voxel_size: Iterable[float] | None, membrane: np.ndarray | None = None) -> bool:
    """True if sections are ``ANISOTROPY_LIMIT`` or more times thicker than the pixels.

    Without ``voxel_size`` the ratio is estimated from ``membrane``
    (:func:`membrane_anisotropy`), or taken as 1 (isotropic) without either.

    Examples
    --------
    >>> is_anisotropic((50, 4, 4)), is_anisotropic((10, 10, 10)), is_anisotropic(None)
    (True, False, False)
    """
    if voxel_size is None:
        return membrane is not None and membrane_anisotropy(membrane) >= ANISOTROPY_LIMIT
    size = _voxel_size(voxel_size)
    return bool(size[0] >= ANISOTROPY_LIMIT * min(size[1], size[2]))


def _membrane_level(membrane: np.ndarray) -> float:
    """The map's confident membrane value: its 99th percentile (of at most ~1M samples), <= 1."""
    step = max(membrane.size // 1_000_000, 1)
    return float(min(np.percentile(membrane.ravel()[::step], 99), 1.0))


def _fragments(relief: np.ndarray, per_slice: bool) -> np.ndarray:
    """Watershed basins of ``relief`` from its local minima (6- or 4-connected), ids 1..n.

    Per slice, the slices run in threads (the watershed releases the GIL: 1.8 -> 1.3 s for
    30x512x512 on two cores, one of them busy); ids are numbered in slice order as in a loop.
    """
    if per_slice:

        def basins(z: int) -> tuple[np.ndarray, int]:
            markers, n = ndi.label(local_minima(relief[z], connectivity=1))
            return watershed(relief[z], markers), n

        with ThreadPoolExecutor(min(relief.shape[0], os.cpu_count() or 1)) as pool:
            found = list(pool.map(basins, range(relief.shape[0])))
        out = np.zeros(relief.shape, np.int64)
        offset = 0
        for z, (labels, n) in enumerate(found):
            out[z] = np.where(labels > 0, labels + offset, 0)
            offset += n
        return out
    markers, _ = ndi.label(local_minima(relief, connectivity=1))
    return watershed(relief, markers).astype(np.int64)


def face_statistics(
    fragments: np.ndarray, membrane: np.ndarray, axes: Iterable[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of touching fragments (a < b) with the sum and count of their face values.

    A face between two neighbouring voxels has the larger of their membrane values (one minus
    the waterz affinity).
    """
    base = int(fragments.max()) + 1
    keys, values = [], []
    for axis in axes:
        here = [slice(None)] * 3
        before = [slice(None)] * 3
        here[axis], before[axis] = slice(1, None), slice(None, -1)
        a, b = fragments[tuple(here)], fragments[tuple(before)]
        touching = a != b
        a, b = a[touching], b[touching]
        keys.append(np.minimum(a, b) * base + np.maximum(a, b))
        values.append(
            np.maximum(membrane[tuple(here)][touching], membrane[tuple(before)][touching])
        )
    key = np.concatenate(keys)
    pairs, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse, weights=np.concatenate(values).astype(np.float64))
    counts = np.bincount(inverse)
    return pairs // base, pairs % base, sums, counts


@dataclass(frozen=True)
class Hierarchy:
    """Fragments of a membrane map and their recorded agglomeration: supervoxels at any
    threshold for the price of one run (:class:`~.agglomeration.MergeTree`).

    ``level`` is the map's confident membrane value; thresholds are relative to it.
    """

    fragments: np.ndarray
    tree: MergeTree
    level: float
    faces: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def table(self, threshold: float) -> np.ndarray:
        """Fragment id -> supervoxel id at ``threshold`` (0 keeps the fragments)."""
        if threshold <= 0:
            return np.arange(self.tree.n + 1)
        return self.tree.table(threshold * self.level)

    def table_keeping_apart(self, threshold: float, names: np.ndarray) -> np.ndarray:
        """:meth:`table`, but regions of fragments named differently (``names``: fragment id
        -> id, 0 = unnamed) never merge (:func:`~.agglomeration.merge_keeping_apart`)."""
        if self.faces is None:
            raise ValueError("this hierarchy kept no face statistics")
        if threshold <= 0:
            return np.arange(self.tree.n + 1)
        limit = threshold * self.level
        return merge_keeping_apart(*self.faces, self.tree.n, limit, names)

    def labels(self, threshold: float) -> np.ndarray:
        """Supervoxels at ``threshold``, shaped like the map."""
        return self.table(threshold)[self.fragments]


def supervoxel_hierarchy(
    membrane: np.ndarray,
    *,
    voxel_size: Iterable[float] | None = None,
    per_slice: bool | None = None,
    sigma: float | None = None,
    up_to: float = 1.0,
) -> Hierarchy:
    """The fragments of a membrane map and their merges up to threshold ``up_to``.

    Options as in :func:`membrane_supervoxels`; ``hierarchy.labels(t)`` equals
    ``membrane_supervoxels(membrane, threshold=t, ...)`` for every ``t <= up_to``.

    Examples
    --------
    >>> membrane = np.zeros((2, 20, 20), np.float32); membrane[:, :, 9:11] = 1
    >>> membrane[:, 3:5, 2:4] = 0.1
    >>> h = supervoxel_hierarchy(membrane, sigma=1.0)
    >>> [len(np.unique(h.labels(t))) for t in (0, 0.05, 0.6)]
    [4, 3, 2]
    """
    membrane = np.asarray(membrane, np.float32)
    if membrane.ndim != 3:
        raise ValueError(f"membrane must be a (Z, Y, X) volume, got shape {membrane.shape}")
    size = _voxel_size(voxel_size)
    if per_slice is None:
        per_slice = is_anisotropic(voxel_size, membrane)
    if sigma is None:
        sigma = DEFAULT_SIGMA_2D if per_slice else DEFAULT_SIGMA_3D
    sigmas = sigma * min(size[1], size[2]) / size
    if per_slice:
        sigmas[0] = 0.0
    relief = ndi.gaussian_filter(membrane, sigmas) if sigma > 0 else membrane
    fragments = _fragments(relief, per_slice)
    axes = (1, 2) if per_slice else (0, 1, 2)
    first, second, sums, counts = face_statistics(fragments, membrane, axes)
    level = _membrane_level(membrane)
    tree = merge_tree(first, second, sums, counts, int(fragments.max()), up_to * level)
    return Hierarchy(fragments, tree, level, (first, second, sums, counts))


def membrane_supervoxels(
    membrane: np.ndarray,
    *,
    threshold: float | None = None,
    voxel_size: Iterable[float] | None = None,
    per_slice: bool | None = None,
    sigma: float | None = None,
) -> np.ndarray:
    """Supervoxels of a membrane map: a watershed, then merging across faint faces.

    Parameters
    ----------
    membrane : ndarray, shape (Z, Y, X)
        Membrane probability (1 = membrane).
    threshold : float, optional
        Touching supervoxels whose shared faces have a mean membrane value below this merge,
        lowest first (waterz's mean-affinity agglomeration); 0 keeps the watershed basins.
        It is relative to the map's 99th percentile, its confident membrane value (1.0 for
        the trained models' maps), so that a weak map (the ``ridge`` filter peaks near 0.6)
        keeps its membranes. Default ``DEFAULT_THRESHOLD_3D`` or, per slice,
        ``DEFAULT_THRESHOLD_2D``.
    voxel_size : (float, float, float), optional
        (z, y, x) size, any unit; scales the smoothing per axis. Default: isotropic.
    per_slice : bool, optional
        Make 2D supervoxels in each slice. Default: for anisotropic voxels, by ``voxel_size``
        or, without it, as estimated from the map (:func:`is_anisotropic`).
    sigma : float, optional
        Gaussian smoothing of the map before the watershed, in (in-plane) pixels; 0 = none.
        Default ``DEFAULT_SIGMA_3D`` or, per slice, ``DEFAULT_SIGMA_2D``.

    Returns
    -------
    ndarray of int64
        Supervoxel ids 1..n (not consecutive), same shape as ``membrane``.

    Examples
    --------
    >>> membrane = np.zeros((4, 20, 20), np.float32); membrane[:, :, 9:11] = 1
    >>> membrane[:, 3:5, 2:4] = 0.1  # a faint blob: it splits a basin that merges again
    >>> sv = membrane_supervoxels(membrane)
    >>> len(np.unique(sv)), bool(sv[0, 0, 0] == sv[3, 19, 8])
    (2, True)
    """
    membrane = np.asarray(membrane, np.float32)
    if per_slice is None and membrane.ndim == 3:
        per_slice = is_anisotropic(voxel_size, membrane)
    if threshold is None:
        threshold = DEFAULT_THRESHOLD_2D if per_slice else DEFAULT_THRESHOLD_3D
    hierarchy = supervoxel_hierarchy(
        membrane,
        voxel_size=voxel_size,
        per_slice=per_slice,
        sigma=sigma,
        up_to=max(float(threshold), 0.0),
    )
    return hierarchy.labels(threshold)


def dense_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values and each value's index among them, as ``np.unique`` with
    ``return_inverse`` gives, by a lookup table when the values are small non-negative ints
    (no sort of the whole array).

    Examples
    --------
    >>> ids, index = dense_ids(np.array([[7, 0, 7, 3]]))
    >>> ids.tolist(), index.tolist()
    ([0, 3, 7], [[2, 0, 2, 1]])
    """
    values = np.asarray(values)
    small = values.dtype.kind in "ui" and values.size and 0 <= values.min()
    if not small or values.max() > 4 * values.size + 1024:
        ids, index = np.unique(values, return_inverse=True)
        return ids, index.reshape(values.shape)
    present = np.bincount(values.ravel()) > 0
    ids = np.flatnonzero(present)
    table = np.zeros(present.size, np.int64)
    table[ids] = np.arange(ids.size)
    return ids.astype(values.dtype), table[values]


def majority_vote(
    labels: np.ndarray,
    supervoxels: np.ndarray,
    *,
    editable: np.ndarray | None = None,
    forbidden: Iterable[int] = (),
) -> np.ndarray:
    """Each supervoxel takes the id most of its voxels have in ``labels``.

    Voxels labelled 0 do not vote; a supervoxel with no labelled voxel keeps its labels. Every
    voxel votes, but only ``editable`` voxels change, and never to an id in ``forbidden`` (they
    keep their label then).

    Parameters
    ----------
    labels : ndarray of int
        The labels to make consistent.
    supervoxels : ndarray of int
        Supervoxel ids, same shape (0 = not a supervoxel: left alone).
    editable : ndarray of bool, optional
        Voxels that may change; default all.
    forbidden : iterable of int
        Ids that may not win a vote.

    Returns
    -------
    ndarray
        A copy of ``labels`` after the vote.

    Examples
    --------
    >>> labels = np.array([[1, 1, 2, 2, 2, 0]])
    >>> sv = np.array([[5, 5, 5, 6, 6, 6]])  # 5: two voxels of 1, one of 2; 6: 2 wins over 0
    >>> majority_vote(labels, sv).tolist()
    [[1, 1, 1, 2, 2, 2]]
    """
    labels = np.asarray(labels)
    supervoxels = np.asarray(supervoxels)
    if supervoxels.shape != labels.shape:
        raise ValueError(f"supervoxels {supervoxels.shape} and labels {labels.shape} differ")
    sv_ids, sv = dense_ids(supervoxels)
    ids, lab = dense_ids(labels)
    voting = labels != 0
    base = ids.size
    # Votes per (supervoxel, id) pair, summed by a sparse matrix (linear time, no global sort);
    # a row's winner has the most votes, the larger id on a tie.
    votes = sparse.csr_matrix(
        (np.ones(int(voting.sum()), np.int64), (sv[voting], lab[voting])),
        shape=(sv_ids.size, base),
    )
    votes.sum_duplicates()
    rows = np.flatnonzero(np.diff(votes.indptr))
    key = votes.data * base + votes.indices
    winner = np.full(sv_ids.size, -1, np.int64)
    if rows.size:
        winner[rows] = np.maximum.reduceat(key, votes.indptr[rows]) % base
    banned = np.isin(ids, np.fromiter((int(f) for f in forbidden), np.int64))
    winner[(winner >= 0) & banned[np.maximum(winner, 0)]] = -1
    if sv_ids[0] == 0:
        winner[0] = -1  # supervoxel id 0 is "none"
    new = winner[sv]
    change = new >= 0
    if editable is not None:
        change &= editable
    out = labels.copy()
    out[change] = ids[new[change]]
    return out


def supervoxel_vote(
    labels: np.ndarray,
    membrane: np.ndarray,
    *,
    threshold: float | None = None,
    voxel_size: Iterable[float] | None = None,
    per_slice: bool | None = None,
    sigma: float | None = None,
    fixed_slices: Iterable[int] = (),
    fixed_ids: Iterable[int] = (),
) -> np.ndarray:
    """Labels whose outlines follow supervoxels of the membrane map (see the module doc).

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
        Propagated labels.
    membrane : ndarray, shape (Z, Y, X)
        Membrane probability (1 = membrane).
    threshold, voxel_size, per_slice, sigma
        Supervoxel options, see :func:`membrane_supervoxels`.
    fixed_slices : iterable of int
        Slices returned unchanged (the user's reference slice); their voxels still vote.
    fixed_ids : iterable of int
        Objects that keep exactly their voxels: none of their voxels changes and no other
        voxel takes their id (objects a targeted repropagation must not touch).

    Returns
    -------
    ndarray
        A copy of ``labels`` after the vote; voxels labelled 0 stay 0.

    Examples
    --------
    >>> membrane = np.zeros((3, 12, 12), np.float32); membrane[:, :, 6] = 1
    >>> labels = np.zeros((3, 12, 12), np.uint8)
    >>> labels[:, :, :6], labels[:, :, 6:] = 1, 2
    >>> labels[2, :, 4:6] = 2  # slice 2: object 2 spilled across the membrane
    >>> out = supervoxel_vote(labels, membrane, fixed_slices=[0])
    >>> bool((out[2, :, :6] == 1).all()), bool((out[:, :, 7:] == 2).all())
    (True, True)
    """
    labels = np.asarray(labels)
    if labels.shape != np.shape(membrane):
        raise ValueError(f"membrane {np.shape(membrane)} and labels {labels.shape} differ")
    supervoxels = membrane_supervoxels(
        membrane, threshold=threshold, voxel_size=voxel_size, per_slice=per_slice, sigma=sigma
    )
    fixed_ids = [int(i) for i in fixed_ids]
    # Unlabelled voxels stay so: the vote moves outlines between objects, it does not paint
    # what the method left empty (with ``objects``, the membranes between fixed objects).
    editable = labels != 0
    if fixed_ids:
        editable &= ~np.isin(labels, fixed_ids)
    for z in fixed_slices:
        editable[int(z)] = False
    return majority_vote(labels, supervoxels, editable=editable, forbidden=fixed_ids)
