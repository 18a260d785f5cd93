"""Object edits (merge, delete, split) as diffs that the caller applies, plus object extents.

Every edit reads the labels and returns a :class:`Diff` (the voxels that change and their new
values) without modifying its input, so the napari widget can apply it as one undoable step with
``layer.data_setitem(diff.indices, diff.values)`` and the CLI or a script with ``diff.apply``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from napari_emseg.proofreading._ids import compact_ids, member

# A split floods from the seeds with a slight preference for pixels near their own seed: where
# the relief is flat (a membrane map is flat inside a cell) the cut falls between the seeds
# instead of the lowest seed taking everything, while a membrane ridge (height ~1, 100 px of
# distance) still decides where there is one.
SPLIT_COMPACTNESS = 0.01


@dataclass(frozen=True)
class Diff:
    """A change to a label volume: full-volume fancy indices and the new values there.

    Examples
    --------
    >>> labels = np.zeros((1, 2, 2), np.uint8)
    >>> diff = Diff((np.array([0]), np.array([1]), np.array([1])), np.array([5], np.uint8))
    >>> diff.apply(labels); labels[0].tolist(), diff.size, diff.slices
    ([[0, 0], [0, 5]], 1, {0})
    """

    indices: tuple[np.ndarray, ...]
    values: np.ndarray

    @property
    def size(self) -> int:
        """Number of voxels that change."""
        return int(self.values.size)

    @property
    def slices(self) -> set[int]:
        """The z indices the diff touches (to mark them as edited, for instance)."""
        return {int(z) for z in np.unique(self.indices[0])} if self.size else set()

    def apply(self, labels: np.ndarray) -> None:
        """Write the new values into ``labels`` in place."""
        labels[self.indices] = self.values

    def inverse(self, labels: np.ndarray) -> Diff:
        """The diff that undoes this one; call it on the labels *before* applying this one."""
        return Diff(self.indices, labels[self.indices].copy())


def _diff_where(labels: np.ndarray, mask: np.ndarray, value: int, z: int | None) -> Diff:
    """The diff setting the voxels of ``mask`` (the whole volume, or slice ``z`` only) to value."""
    if z is None:
        indices = np.nonzero(mask)
    else:
        ys, xs = np.nonzero(mask)
        indices = (np.full(ys.size, z, np.intp), ys, xs)
    return Diff(indices, np.full(indices[0].size, value, labels.dtype))


def diff_between(before: np.ndarray, after: np.ndarray) -> Diff:
    """The diff that turns ``before`` into ``after`` (e.g. a repropagation result).

    Examples
    --------
    >>> a = np.zeros((1, 2, 3), np.uint16); b = a.copy(); b[0, 1, 2] = 4
    >>> diff_between(a, b).size
    1
    """
    if before.shape != after.shape:
        raise ValueError(f"shapes {before.shape} and {after.shape} differ")
    indices = np.nonzero(before != after)
    return Diff(indices, after[indices])


def ids_touched(labels: np.ndarray, diff: Diff) -> set[int]:
    """Non-zero ids that lose or gain voxels when ``diff`` is applied to ``labels``.

    Examples
    --------
    >>> labels = np.array([[[1, 2]]]); diff = merge_objects(labels, 1, [2])
    >>> sorted(ids_touched(labels, diff))
    [1, 2]
    """
    if not diff.size:
        return set()
    ids = np.union1d(labels[diff.indices], diff.values)
    return {int(i) for i in ids if i != 0}


def next_free_id(labels: np.ndarray) -> int:
    """One more than the largest id (1 for empty labels).

    Examples
    --------
    >>> next_free_id(np.array([[0, 3], [7, 1]]))
    8
    """
    return int(labels.max(initial=0)) + 1


def _slice_or_volume(labels: np.ndarray, z: int | None) -> np.ndarray:
    if z is None:
        return labels
    if not 0 <= z < labels.shape[0]:
        raise ValueError(f"slice {z} is outside 0..{labels.shape[0] - 1}")
    return labels[z]


def merge_objects(
    labels: np.ndarray, keep: int, absorb: Iterable[int], *, z: int | None = None
) -> Diff:
    """Give every voxel of the ``absorb`` objects to ``keep``, everywhere or in slice ``z`` only.

    Examples
    --------
    >>> labels = np.array([[[1, 2, 3]], [[2, 2, 3]]])
    >>> diff = merge_objects(labels, 1, [2], z=1)
    >>> out = labels.copy(); diff.apply(out); out.tolist()
    [[[1, 2, 3]], [[1, 1, 3]]]
    """
    keep = int(keep)
    if keep == 0:
        raise ValueError("cannot merge into 0 (background): use delete_object")
    if keep > np.iinfo(labels.dtype).max:
        raise ValueError(f"id {keep} does not fit the labels' {labels.dtype}")
    others = np.array(sorted({int(a) for a in absorb} - {0, keep}), np.uint64)
    part = _slice_or_volume(labels, z)
    return _diff_where(labels, member(part, others), keep, z)


def delete_object(labels: np.ndarray, obj: int, *, z: int | None = None) -> Diff:
    """Set the voxels of ``obj`` to 0, everywhere or in slice ``z`` only.

    Examples
    --------
    >>> labels = np.array([[[1, 2]], [[1, 1]]])
    >>> out = labels.copy(); delete_object(labels, 1).apply(out); out.tolist()
    [[[0, 2]], [[0, 0]]]
    """
    part = _slice_or_volume(labels, z)
    mask = part == obj if int(obj) != 0 else np.zeros(part.shape, bool)
    return _diff_where(labels, mask, 0, z)


def _check_seeds(
    labels: np.ndarray, obj: int, seeds: Sequence[tuple[int, int, int]]
) -> list[tuple[int, int, int]]:
    points = [tuple(int(c) for c in s) for s in seeds]
    if len(points) < 2:
        raise ValueError(f"a split needs at least 2 seeds inside object {obj}, got {len(points)}")
    for point in points:
        if len(point) != 3:
            raise ValueError(f"seed {point} must be (z, y, x)")
        if not all(0 <= c < n for c, n in zip(point, labels.shape, strict=True)):
            raise ValueError(f"seed {point} lies outside the volume {labels.shape}")
        found = int(labels[point])
        if found != obj:
            raise ValueError(f"seed {point} lies on id {found}, not on object {obj}")
    if len(set(points)) < len(points):
        raise ValueError("two seeds lie on the same voxel: place each seed in its own part")
    return points  # type: ignore[return-value]


def _seed_ids(labels: np.ndarray, obj: int, count: int, new_ids: Sequence[int] | None) -> list[int]:
    """Ids of the seeds after the first: the next free ids, or the caller's (checked)."""
    if new_ids is None:
        first = next_free_id(labels)
        ids = list(range(first, first + count))
    else:
        ids = [int(i) for i in new_ids]
        if len(ids) != count:
            raise ValueError(f"new_ids needs one id per seed after the first ({count}), got {ids}")
        if any(i <= 0 for i in ids):
            raise ValueError(f"new_ids must be positive, got {ids}")
        taken = sorted((set(ids) - {obj}) & {int(i) for i in np.unique(labels)})
        if taken:
            raise ValueError(f"new ids {taken} belong to other objects: use merge_objects")
    top = max(ids, default=0)
    if labels.dtype.kind in "iu" and top > np.iinfo(labels.dtype).max:
        raise ValueError(f"id {top} does not fit the labels' {labels.dtype}: convert them first")
    return ids


def split_object(
    labels: np.ndarray,
    obj: int,
    seeds: Sequence[tuple[int, int, int]],
    *,
    membrane: np.ndarray | None = None,
    new_ids: Sequence[int] | None = None,
) -> Diff:
    """Split ``obj`` in the slices holding seeds by a seeded watershed inside its 2D mask.

    In every slice that has seeds, that slice's part of the object is flooded from its seeds
    over the membrane map (1 = membrane), or over the inverted distance transform of the mask
    when ``membrane`` is None, so the cut follows a membrane or the narrowest neck. The first
    seed keeps ``obj``; the others get ``new_ids`` (default: the next free ids, in seed order).
    Parts of the mask that no seed reaches keep ``obj``; slices without seeds are unchanged.

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
    obj : int
        The object to split.
    seeds : sequence of (z, y, x)
        At least two voxels of ``obj``.
    membrane : ndarray, shape (Z, Y, X), optional
        Membrane probability.
    new_ids : sequence of int, optional
        One id per seed after the first; an id may repeat (those seeds share a part) but may not
        belong to another object.

    Raises
    ------
    ValueError
        Fewer than 2 seeds, a seed outside the object or on the same voxel as another.

    Examples
    --------
    >>> labels = np.zeros((1, 5, 9), np.uint8); labels[0, :, :] = 3
    >>> membrane = np.zeros(labels.shape, np.float32); membrane[0, :, 4] = 1
    >>> diff = split_object(labels, 3, [(0, 2, 1), (0, 2, 7)], membrane=membrane)
    >>> out = labels.copy(); diff.apply(out); out[0, 2].tolist()
    [3, 3, 3, 3, 3, 4, 4, 4, 4]
    """
    obj = int(obj)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a (Z, Y, X) volume, got shape {labels.shape}")
    if membrane is not None and membrane.shape != labels.shape:
        raise ValueError(f"membrane shape {membrane.shape} and labels shape {labels.shape} differ")
    points = _check_seeds(labels, obj, seeds)
    ids = [obj, *_seed_ids(labels, obj, len(points) - 1, new_ids)]
    zs, ys, xs, values = [], [], [], []
    for z in sorted({p[0] for p in points}):
        here = [(p, i) for p, i in zip(points, ids, strict=True) if p[0] == z]
        y, x, v = _split_slice(labels[z], obj, here, None if membrane is None else membrane[z])
        zs.append(np.full(y.size, z, np.intp))
        ys.append(y)
        xs.append(x)
        values.append(v)
    indices = (np.concatenate(zs), np.concatenate(ys), np.concatenate(xs))
    return Diff(indices, np.concatenate(values).astype(labels.dtype))


def _split_slice(
    plane: np.ndarray,
    obj: int,
    seeds: list[tuple[tuple[int, int, int], int]],
    membrane: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ys, xs, new ids) of the voxels of ``obj`` in one slice that change owner."""
    inner = ndi.find_objects((plane == obj).astype(np.uint8))[0]
    # A few pixels of context, so the smoothing sees the membranes around the object.
    box = tuple(
        slice(max(s.start - 4, 0), min(s.stop + 4, n))
        for s, n in zip(inner, plane.shape, strict=True)
    )
    mask = plane[box] == obj
    oy, ox = box[0].start, box[1].start
    markers = np.zeros(mask.shape, np.int64)
    for (_, y, x), new in seeds:
        markers[y - oy, x - ox] = new
    if membrane is None:
        # Pad so that the object's edge on the crop border still counts as an edge.
        relief = -ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    else:
        relief = ndi.gaussian_filter(membrane[box].astype(np.float32), 1.0)
    flooded = watershed(relief, markers, mask=mask, compactness=SPLIT_COMPACTNESS)
    changed = mask & (flooded != 0) & (flooded != obj)
    ys, xs = np.nonzero(changed)
    return ys + oy, xs + ox, flooded[changed]


@dataclass(frozen=True)
class ObjectExtent:
    """Where one object lies: voxel count, z range, half-open box and centroid (z, y, x)."""

    id: int
    voxels: int
    z_range: tuple[int, int]
    bbox: tuple[int, int, int, int, int, int]
    centroid: tuple[float, float, float]


def object_extent(labels: np.ndarray, obj: int) -> ObjectExtent:
    """The extent of one object.

    Examples
    --------
    >>> labels = np.zeros((3, 4, 4), np.uint8); labels[1:3, 1, 2:4] = 5
    >>> e = object_extent(labels, 5)
    >>> e.voxels, e.z_range, e.bbox, e.centroid
    (4, (1, 2), (1, 1, 2, 3, 2, 4), (1.5, 1.0, 2.5))
    """
    obj = int(obj)
    mask = labels == obj
    found = ndi.find_objects(mask.astype(np.uint8))
    if obj == 0 or not found:
        raise ValueError(f"object {obj} is not in the labels")
    box = found[0]
    coords = np.nonzero(mask[box])
    starts = [s.start for s in box]
    centroid = tuple(float(c.mean() + s) for c, s in zip(coords, starts, strict=True))
    return ObjectExtent(
        id=obj,
        voxels=int(coords[0].size),
        z_range=(box[0].start, box[0].stop - 1),
        bbox=(*starts, *(s.stop for s in box)),  # type: ignore[arg-type]
        centroid=centroid,  # type: ignore[arg-type]
    )


def object_table(labels: np.ndarray) -> list[ObjectExtent]:
    """The extent of every object (id order), in a few passes over the volume.

    Examples
    --------
    >>> labels = np.zeros((2, 3, 3), np.uint16); labels[0, 0, 0] = 9; labels[:, 2, 1:] = 4
    >>> [(e.id, e.voxels, e.z_range) for e in object_table(labels)]
    [(4, 4, (0, 1)), (9, 1, (0, 0))]
    """
    if labels.ndim != 3:
        raise ValueError(f"labels must be a (Z, Y, X) volume, got shape {labels.shape}")
    ids, work = compact_ids(labels)
    n = ids.size
    if n == 0:
        return []
    boxes = ndi.find_objects(work, max_label=n)
    counts = np.zeros(n + 1, np.int64)
    sums = np.zeros((3, n + 1))
    ys = np.arange(labels.shape[1], dtype=np.float64)[:, None]
    xs = np.arange(labels.shape[2], dtype=np.float64)[None, :]
    for z, plane in enumerate(work):  # per slice: bounded memory, weights broadcast cheaply
        flat = plane.ravel()
        here = np.bincount(flat, minlength=n + 1)
        counts += here
        sums[0] += z * here
        sums[1] += np.bincount(flat, np.broadcast_to(ys, plane.shape).ravel(), n + 1)
        sums[2] += np.bincount(flat, np.broadcast_to(xs, plane.shape).ravel(), n + 1)
    table = []
    for k, box in enumerate(boxes, start=1):
        if box is None:
            continue
        table.append(
            ObjectExtent(
                id=int(ids[k - 1]),
                voxels=int(counts[k]),
                z_range=(box[0].start, box[0].stop - 1),
                bbox=(*(s.start for s in box), *(s.stop for s in box)),  # type: ignore[arg-type]
                centroid=tuple(float(s) for s in sums[:, k] / counts[k]),  # type: ignore[arg-type]
            )
        )
    return table
