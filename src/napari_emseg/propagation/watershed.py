"""The classical propagator: each slice seeded from its neighbour's eroded masks.

This is the baseline the learned propagators must beat. Moving away from the reference slice,
the masks of the previous slice are eroded into seeds, seeds that fall on the new slice's
membranes are dropped, cells of a fresh 2D watershed that no seed touches become newcomers
(objects entering the volume), and a watershed of the new slice's membrane map grows all seeds.
An object whose region shrinks below ``min_area_ratio`` of its previous area, or moves off its
previous mask, ends there.
"""

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries, watershed

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_emseg.segmentation import watershed_slice


def eroded_seeds(labels_2d: np.ndarray, erosion: float) -> np.ndarray:
    """Shrink every object by ``erosion`` px, keeping at least the core of thin objects."""
    ids = np.unique(labels_2d)
    ids = ids[ids != 0]
    if ids.size == 0:
        return np.zeros_like(labels_2d)
    inside = ~find_boundaries(labels_2d, mode="inner") & (labels_2d != 0)
    distance = ndi.distance_transform_edt(inside)
    core = np.asarray(ndi.maximum(distance, labels_2d, index=ids), np.float32)
    radius = np.zeros(int(ids.max()) + 1, np.float32)
    radius[ids] = np.minimum(erosion, 0.5 * core)
    keep = (labels_2d != 0) & (distance >= radius[labels_2d])
    return np.where(keep, labels_2d, 0)


def _newcomer_markers(
    membrane_2d: np.ndarray, seeds: np.ndarray, first_id: int, cover: float
) -> np.ndarray:
    """Cells of a fresh watershed that no propagated seed reaches, with ids from ``first_id``."""
    fragments = watershed_slice(membrane_2d)
    n = int(fragments.max())
    area = np.bincount(fragments.ravel(), minlength=n + 1)
    seeded = np.bincount(fragments.ravel(), weights=(seeds > 0).ravel(), minlength=n + 1)
    new = np.flatnonzero((seeded < cover * np.maximum(area, 1)) & (np.arange(n + 1) > 0))
    lut = np.zeros(n + 1, np.int64)
    lut[new] = first_id + np.arange(new.size)
    # Only the core of a newcomer is a marker so that the watershed still places its outline.
    return eroded_seeds(lut[fragments], 3.0)


def propagation_step(
    previous: np.ndarray,
    membrane_2d: np.ndarray,
    *,
    next_id: int,
    fixed: np.ndarray | None = None,
    erosion: float = 4.0,
    threshold: float = 0.6,
    min_area_ratio: float = 0.2,
    newcomers: bool = True,
    newcomer_cover: float = 0.05,
    weak_boundary: float = 0.1,
) -> np.ndarray:
    """Labels of one slice from the previous slice's labels and this slice's membrane map.

    ``fixed`` holds objects that must keep exactly their voxels in this slice (0 elsewhere);
    they still take part in the flooding so that moving objects respect them. Newcomer ids
    start at ``next_id``. Neighbours whose shared boundary has a mean membrane value below
    ``weak_boundary`` are one cell in this slice: the smaller of the two ends.
    """
    relief = ndi.gaussian_filter(membrane_2d.astype(np.float32), 1.0)
    seeds = eroded_seeds(previous, erosion)
    on_membrane = relief >= threshold
    kept = np.where(on_membrane, 0, seeds)
    # An object whose every seed pixel lies on a membrane keeps its seed rather than vanish.
    lost = np.setdiff1d(np.unique(seeds), np.unique(kept))
    if lost.size:
        kept = np.where(np.isin(seeds, lost), seeds, kept)
    markers = kept.astype(np.int64)
    if fixed is not None:
        markers = np.where(fixed != 0, fixed, markers)
    if newcomers:
        new = _newcomer_markers(membrane_2d, markers, next_id, newcomer_cover)
        markers = np.where((markers == 0) & (new != 0), new, markers)
    flooded = watershed(relief, markers)
    flooded = _merge_unseparated(flooded, relief, weak_boundary, fixed, next_id)
    return _end_vanishing(flooded, previous, relief, min_area_ratio, fixed)


def boundary_strengths(labels: np.ndarray, relief: np.ndarray) -> dict[tuple[int, int], float]:
    """Mean membrane value along the boundary of each pair of touching labels."""
    keys, values = [], []
    for axis in (0, 1):
        a = labels.take(range(labels.shape[axis] - 1), axis)
        b = labels.take(range(1, labels.shape[axis]), axis)
        ra = relief.take(range(relief.shape[axis] - 1), axis)
        rb = relief.take(range(1, relief.shape[axis]), axis)
        touching = (a != b) & (a != 0) & (b != 0)
        low, high = np.minimum(a, b)[touching], np.maximum(a, b)[touching]
        keys.append(low.astype(np.int64) * (int(labels.max()) + 1) + high)
        values.append(np.maximum(ra, rb)[touching])
    keys_all, values_all = np.concatenate(keys), np.concatenate(values)
    if keys_all.size == 0:
        return {}
    unique, inverse = np.unique(keys_all, return_inverse=True)
    means = np.bincount(inverse, weights=values_all) / np.bincount(inverse)
    base = int(labels.max()) + 1
    return {(int(k // base), int(k % base)): float(m) for k, m in zip(unique, means, strict=True)}


def _merge_unseparated(
    flooded: np.ndarray,
    relief: np.ndarray,
    weak: float,
    fixed: np.ndarray | None,
    first_new_id: int,
) -> np.ndarray:
    """Two objects with no membrane between them are one cell here: one of them ends.

    This is how an object that ends (or merges into its neighbour) stops being carried on. A
    newcomer gives way to a carried object; between two carried objects the smaller ends.
    """
    if weak <= 0:
        return flooded
    protected = set(np.unique(fixed).tolist()) if fixed is not None else set()
    area = np.bincount(flooded.ravel())
    lut = np.arange(area.size)
    for (a, b), strength in sorted(
        boundary_strengths(flooded, relief).items(), key=lambda item: item[1]
    ):
        if strength >= weak:
            break
        a, b = lut[a], lut[b]
        if a == b:
            continue
        rank_a, rank_b = (a < first_new_id, area[a]), (b < first_new_id, area[b])
        small, big = (a, b) if rank_a < rank_b else (b, a)
        if small in protected:
            continue
        lut[lut == small] = big
        area[big] += area[small]
    return lut[flooded]


def _end_vanishing(
    flooded: np.ndarray,
    previous: np.ndarray,
    relief: np.ndarray,
    min_area_ratio: float,
    fixed: np.ndarray | None,
) -> np.ndarray:
    """Drop objects that shrank too much or left their previous footprint; refill their area."""
    size = int(max(flooded.max(), previous.max())) + 1
    now = np.bincount(flooded.ravel(), minlength=size)
    before = np.bincount(previous.ravel(), minlength=size)
    overlap = np.bincount(flooded.ravel(), weights=(flooded == previous).ravel(), minlength=size)
    carried = before > 0
    carried[0] = False
    ended = carried & ((now < min_area_ratio * before) | (overlap < 0.25 * now))
    if fixed is not None:
        ended[np.unique(fixed)] = False
    if not ended.any():
        return flooded
    keep = np.where(ended[flooded], 0, flooded)
    return watershed(relief, keep) if keep.any() else keep


def propagate_watershed(
    image: np.ndarray,
    labels: np.ndarray,
    ref_slice: int,
    *,
    membrane: np.ndarray,
    z_lo: int,
    z_hi: int,
    objects: set[int] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    **options,
) -> np.ndarray:
    """Classical propagation from ``ref_slice`` to ``z_lo`` and ``z_hi`` (see module doc)."""
    dtype = np.uint32 if labels.dtype.itemsize <= 4 else labels.dtype
    out = labels.astype(dtype, copy=True)
    reference = out[ref_slice]
    if objects is not None:
        reference = np.where(np.isin(reference, list(objects)), reference, 0)
    next_id = int(labels.max()) + 1
    sequences = [range(ref_slice + 1, z_hi + 1), range(ref_slice - 1, z_lo - 1, -1)]
    total = (z_hi - z_lo) or 1
    done = 0
    for sequence in sequences:
        previous = reference
        for z in sequence:
            check_cancel(cancel)
            fixed = None
            if objects is not None:
                current = out[z]
                fixed = np.where(np.isin(current, list(objects)) | (current == 0), 0, current)
            new = propagation_step(
                previous,
                membrane[z],
                next_id=next_id,
                fixed=fixed,
                newcomers=objects is None,
                **options,
            )
            if fixed is not None:
                new = np.where(fixed != 0, fixed, np.where(np.isin(new, list(objects)), new, 0))
            next_id = max(next_id, int(new.max()) + 1)
            out[z] = new
            previous = new if objects is None else np.where(fixed == 0, new, 0)
            done += 1
            report(progress, done, total, f"propagating (slice {z})")
    return out
