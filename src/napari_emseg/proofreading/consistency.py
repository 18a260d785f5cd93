"""Find the places where a segmentation is probably wrong, worst first.

A neurite changes little from one 50 nm section to the next, so each object in each slice is
scored by how badly it breaks that continuity:

- *jump*: low overlap (IoU) or a large area change with the neighbouring slices. An error in
  one slice (an id swap, a merge) breaks continuity on both sides and scores fully; a one-sided
  break (an error that starts here and persists, or a neurite ending) scores half;
- *split*: the object falls into several sizeable 2D pieces (halved when its neighbours are in
  pieces too, as at a real branch);
- *gap*: the object is absent here but present in the slices above and below;
- *lone*: the object is present in this slice only (the other half of an id switch);
- *membranes* (when a membrane map is given): the object's mask disagrees with a one-slice
  propagation (:func:`~napari_emseg.propagation.watershed.propagation_step`) from both z-1
  and z+1.

The cues combine as independent evidence: ``1 - prod(1 - cue)``. Everything is computed with
per-slice bincounts over compact ids, so a 30 x 512 x 512 stack takes about a second without
membranes.

A proofreader works through objects, not (object, slice) pairs, and a sure error in a speck is
worth less than a likely one in a large neurite: :func:`rank_places` turns the suspicions into
a worklist, one :class:`Place` per object ranked by its expected gain (the voxels it would put
right: score x area, summed over its suspicious slices), shown where that gain is largest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from skimage.measure import label as connected_components

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_emseg.proofreading._ids import compact_ids

GAP_SCORE = 0.9
SPLIT_SCORE = 0.6
LONE_SCORE = 0.6


@dataclass(frozen=True)
class Suspicion:
    """One object in one slice that looks wrong; ``score`` in [0, 1], 1 = surely wrong."""

    obj: int
    z: int
    score: float
    reason: str
    centroid: tuple[float, float]


def _bad_iou(iou: np.ndarray) -> np.ndarray:
    # Real neurites overlap their neighbour by IoU 0.6-0.9; below 0.1 something is wrong.
    return np.clip((0.5 - iou) / 0.4, 0.0, 1.0)


def _bad_ratio(ratio: np.ndarray) -> np.ndarray:
    # Area ratio smaller/larger between neighbouring slices: 0.5 is plausible, 0.15 is not.
    return np.clip((0.5 - ratio) / 0.35, 0.0, 1.0)


def _two_sided(prev: np.ndarray, nxt: np.ndarray, *, either: bool = True) -> np.ndarray:
    """Combine the evidence against each slice from both sides (rows are slices; NaN: none).

    Both sides bad scores fully. One bad side scores half (the error may start here, or the
    other side is missing), unless the neighbour across it is bad on both sides and so
    explains it (a single wrong slice does not taint its neighbours). Without ``either`` a
    good side clears the slice.
    """
    with np.errstate(invalid="ignore"):
        both = np.minimum(prev, nxt)  # NaN when a side is missing
    wrong = np.nan_to_num(both, nan=0.0)
    blamed_prev, blamed_next = np.zeros_like(wrong), np.zeros_like(wrong)
    blamed_prev[1:], blamed_next[:-1] = wrong[:-1], wrong[1:]
    half = 0.5 * np.fmax(prev * (1.0 - blamed_prev), nxt * (1.0 - blamed_next))
    missing = np.isnan(prev) | np.isnan(nxt)
    out = np.where(missing, half, np.fmax(both, half) if either else both)
    return np.nan_to_num(out, nan=0.0)


@dataclass
class _Stats:
    """Per slice (rows) and compact id (columns) measurements."""

    area: np.ndarray  # voxels
    inter: np.ndarray  # overlap with the same id in the next slice (last row 0)
    second: np.ndarray  # area of the second-largest 2D piece
    pieces: np.ndarray  # number of sizeable 2D pieces
    sum_y: np.ndarray
    sum_x: np.ndarray
    edge: np.ndarray  # pixels on the image border


def _pieces(plane: np.ndarray, n: int, min_piece: int) -> tuple[np.ndarray, np.ndarray]:
    """(second-largest piece area, number of sizeable pieces) per id of one slice."""
    comps = connected_components(plane, background=0, connectivity=2)
    sizes = np.bincount(comps.ravel())
    owner = np.zeros(sizes.size, np.int64)
    owner[comps.ravel()] = plane.ravel()
    sizes, owner = sizes[1:], owner[1:]
    order = np.lexsort((sizes, owner))
    sizes, owner = sizes[order], owner[order]
    second = np.zeros(n + 1, np.int64)
    pieces = np.bincount(owner[sizes >= min_piece], minlength=n + 1)
    runner_up = np.flatnonzero(owner[:-1] == owner[1:])  # not the largest of its owner
    # The last runner-up of each owner (sorted by size) is its second-largest piece.
    if runner_up.size:
        last = runner_up[np.r_[owner[runner_up][1:] != owner[runner_up][:-1], True]]
        second[owner[last]] = sizes[last]
    return second, pieces


def _measure(
    work: np.ndarray,
    n: int,
    min_piece: int,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> _Stats:
    depth = work.shape[0]
    shape = (depth, n + 1)
    stats = _Stats(*(np.zeros(shape) for _ in range(7)))
    ys = np.arange(work.shape[1], dtype=np.float64)[:, None]
    xs = np.arange(work.shape[2], dtype=np.float64)[None, :]
    for z in range(depth):
        check_cancel(cancel)
        flat = work[z].ravel()
        stats.area[z] = np.bincount(flat, minlength=n + 1)
        stats.sum_y[z] = np.bincount(flat, np.broadcast_to(ys, work[z].shape).ravel(), n + 1)
        stats.sum_x[z] = np.bincount(flat, np.broadcast_to(xs, work[z].shape).ravel(), n + 1)
        if z + 1 < depth:
            same = flat == work[z + 1].ravel()
            stats.inter[z] = np.bincount(flat[same], minlength=n + 1)
        stats.second[z], stats.pieces[z] = _pieces(work[z], n, min_piece)
        rim = np.concatenate([work[z][0], work[z][-1], work[z][:, 0], work[z][:, -1]])
        stats.edge[z] = np.bincount(rim, minlength=n + 1)
        report(progress, z + 1, depth, "measuring the objects")
    stats.area[:, 0] = 0  # background is no object
    return stats


def _membrane_cue(
    work: np.ndarray,
    membrane: np.ndarray,
    area: np.ndarray,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(cue, IoU from z-1 and from z+1) of each object's mask against one-slice propagations."""
    from napari_emseg.propagation.watershed import propagation_step

    depth, n1 = area.shape
    iou = np.full((2, depth, n1), np.nan)  # [from z-1, from z+1]
    steps = [(z, z - 1, 0) for z in range(1, depth)] + [(z, z + 1, 1) for z in range(depth - 1)]
    for k, (z, src, side) in enumerate(steps):
        check_cancel(cancel)
        guess = propagation_step(work[src], membrane[z], next_id=n1, newcomers=False)
        flat, other = work[z].ravel(), guess.ravel()
        # Compare on labelled pixels only: the flood also covers pixels left 0 (membranes).
        inter = np.bincount(flat[flat == other], minlength=n1)[:n1]
        guess_area = np.bincount(other[flat != 0], minlength=n1)[:n1]
        union = area[z] + guess_area - inter
        # An object absent from the source slice cannot be propagated from it: no evidence.
        known = (area[z] > 0) & (area[src] > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou[side, z] = np.where(known, inter / union, np.nan)
        report(progress, k + 1, len(steps), "checking against the membranes")
    # Stricter than between slices: the propagated guess already follows the motion.
    # A good match with one side clears the slice: the other neighbour may be the wrong one.
    cue = _two_sided(*(np.clip((0.9 - side) / 0.4, 0.0, 1.0) for side in iou), either=False)
    return cue, iou


def find_suspicious(
    labels: np.ndarray,
    *,
    membrane: np.ndarray | None = None,
    max_items: int | None = None,
    min_score: float = 0.1,
    min_piece: int = 20,
    trusted_slices: Iterable[int] = (),
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> list[Suspicion]:
    """Objects per slice that break z-continuity, worst first (see the module doc).

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
    membrane : ndarray, shape (Z, Y, X), optional
        Membrane probability; adds the membrane cue (two propagation steps per slice, about
        0.3 s per 512 x 512 slice).
    max_items : int, optional
        Keep only the worst ones.
    min_score : float
        Leave out places scoring less.
    min_piece : int
        Smallest 2D piece (pixels) that counts towards a split.
    trusted_slices : iterable of int
        Slices the user has corrected (references, slices painted by hand): right by the user's
        word, so nothing in them is listed; a break next to them is listed on the other side.
    progress, cancel : callable, optional
        ``progress(done, total, message)`` per slice; ``cancel()`` returning True stops.

    Returns
    -------
    list of Suspicion
        Sorted by score (highest first), then slice and id.

    Examples
    --------
    >>> labels = np.zeros((5, 20, 20), np.uint16)
    >>> labels[:, 2:18, 2:10], labels[:, 2:18, 10:18] = 1, 2
    >>> labels[2, 2:18, 2:10], labels[2, 2:18, 10:18] = 2, 1  # ids swapped in slice 2
    >>> [(s.obj, s.z, round(s.score, 2)) for s in find_suspicious(labels)]
    [(1, 2, 1.0), (2, 2, 1.0)]
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a (Z, Y, X) volume, got shape {labels.shape}")
    if membrane is not None and membrane.shape != labels.shape:
        raise ValueError(f"membrane shape {membrane.shape} and labels shape {labels.shape} differ")
    ids, work = compact_ids(labels)
    if ids.size == 0:
        return []
    st = _measure(work, ids.size, min_piece, progress, cancel)
    area = st.area
    present = area > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        pair = present[:-1] & present[1:]
        iou_next = np.where(pair, st.inter[:-1] / (area[:-1] + area[1:] - st.inter[:-1]), np.nan)
        ratio_next = np.where(
            pair, np.minimum(area[:-1], area[1:]) / np.maximum(area[:-1], area[1:]), np.nan
        )
    side_next = np.fmax(_bad_iou(iou_next), _bad_ratio(ratio_next))  # NaN stays NaN
    gap_row = np.full((1, area.shape[1]), np.nan)
    jump = _two_sided(np.vstack([gap_row, side_next]), np.vstack([side_next, gap_row]))

    with np.errstate(invalid="ignore", divide="ignore"):
        split = np.where(
            present & (st.second >= min_piece), np.minimum(1.0, st.second / (0.25 * area)), 0.0
        )
    # Pieces that persist into the neighbouring slices are more likely a real branch.
    split_here = st.pieces >= 2
    branchy = np.zeros(area.shape)
    branchy[1:] += split_here[:-1]
    branchy[:-1] += split_here[1:]
    split *= SPLIT_SCORE * np.where(branchy >= 2, 0.25, np.where(branchy == 1, 0.5, 1.0))

    gap = np.zeros(area.shape)
    gap[1:-1] = GAP_SCORE * (~present[1:-1] & present[:-2] & present[2:])

    # The other half of an id switch in one slice: an object found in that slice only.
    lone = np.zeros(area.shape)
    lone[1:-1] = LONE_SCORE * (present[1:-1] & ~present[:-2] & ~present[2:])

    cues = {"jump": jump, "split": split, "gap": gap, "lone": lone}
    membrane_iou = None
    if membrane is not None:
        cues["membranes"], membrane_iou = _membrane_cue(work, membrane, area, progress, cancel)
    # Objects cut by the image edge change shape, area and pieces as they drift in and out:
    # discount them by how much of their outline (a circle's of the same area) is the edge.
    with np.errstate(invalid="ignore", divide="ignore"):
        on_edge = np.nan_to_num(st.edge / (2.0 * np.sqrt(np.pi * area)), nan=0.0)
    for name in ("jump", "split", "lone", "membranes"):
        if name in cues:
            cues[name] = cues[name] * (1.0 - 0.5 * np.minimum(on_edge, 1.0))
    score = 1.0 - np.prod([1.0 - c for c in cues.values()], axis=0)
    score[:, 0] = 0.0
    trusted = [z for z in set(trusted_slices) if 0 <= z < score.shape[0]]
    score[trusted] = 0.0
    zs, ks = np.nonzero(score >= min_score)
    order = np.lexsort((ks, zs, -score[zs, ks]))
    if max_items is not None:
        order = order[: max(int(max_items), 0)]
    context = _Context(st, iou_next, membrane_iou)
    return [
        Suspicion(
            obj=int(ids[ks[i] - 1]),
            z=int(zs[i]),
            score=float(score[zs[i], ks[i]]),
            reason=context.reason(cues, int(zs[i]), int(ks[i])),
            centroid=context.centroid(int(zs[i]), int(ks[i])),
        )
        for i in order
    ]


@dataclass
class _Context:
    """What the reasons and centroids of the kept items are written from."""

    st: _Stats
    iou_next: np.ndarray
    membrane_iou: np.ndarray | None

    def centroid(self, z: int, k: int) -> tuple[float, float]:
        rows = [z] if self.st.area[z, k] > 0 else [z - 1, z + 1]  # a gap: its neighbours
        area = sum(self.st.area[r, k] for r in rows)
        return (
            float(sum(self.st.sum_y[r, k] for r in rows) / area),
            float(sum(self.st.sum_x[r, k] for r in rows) / area),
        )

    def reason(self, cues: dict[str, np.ndarray], z: int, k: int) -> str:
        parts = []
        for name in sorted(cues, key=lambda c: -cues[c][z, k]):
            if cues[name][z, k] >= 0.1:
                parts.append(getattr(self, f"_{name}")(z, k))
        return "; ".join(parts)

    def _jump(self, z: int, k: int) -> str:
        depth = self.st.area.shape[0]
        sides = []
        for other, row in ((z - 1, z - 1), (z + 1, z)):
            if 0 <= row < depth - 1 and not np.isnan(self.iou_next[row, k]):
                change = self.st.area[z, k] / self.st.area[other, k]
                sides.append(f"z{other} IoU {self.iou_next[row, k]:.2f} area x{change:.2g}")
        return f"abrupt change ({'; '.join(sides)})"

    def _split(self, z: int, k: int) -> str:
        return f"in {int(self.st.pieces[z, k])} separate pieces"

    def _gap(self, z: int, k: int) -> str:
        return f"missing here, present in z{z - 1} and z{z + 1}"

    def _lone(self, z: int, k: int) -> str:
        return "in this slice only"

    def _membranes(self, z: int, k: int) -> str:
        assert self.membrane_iou is not None
        sides = [
            f"z{src} IoU {iou[z, k]:.2f}"
            for iou, src in zip(self.membrane_iou, (z - 1, z + 1), strict=True)
            if not np.isnan(iou[z, k])
        ]
        return f"off the membranes ({', '.join(sides)})"


def suspicion_map(labels: np.ndarray, suspicions: list[Suspicion]) -> np.ndarray:
    """A float32 volume for display: each suspicious object's pixels in its slice get its score.

    A gap (an object missing from a slice) is painted where the object lies in the slices
    above and below, so it shows up too. Where several overlap the highest score wins.

    Examples
    --------
    >>> labels = np.zeros((2, 2, 3), np.uint8); labels[:, :, 1:] = 4
    >>> suspicion_map(labels, [Suspicion(4, 1, 0.5, "test", (0.5, 1.5))])[1].tolist()
    [[0.0, 0.5, 0.5], [0.0, 0.5, 0.5]]
    """
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, np.float32)
    by_slice: dict[int, dict[int, float]] = {}
    for s in suspicions:
        scores = by_slice.setdefault(s.z, {})
        scores[s.obj] = max(scores.get(s.obj, 0.0), s.score)
    for z, scores in by_slice.items():
        objs = np.array(sorted(scores), labels.dtype)
        values = np.array([scores[int(o)] for o in objs], np.float32)
        plane = labels[z]
        where = np.clip(np.searchsorted(objs, plane), 0, objs.size - 1)
        match = objs[where] == plane
        out[z] = np.where(match, values[where], 0.0)
        found = np.zeros(objs.size, bool)
        found[where[match]] = True
        for obj, score in zip(objs[~found], values[~found], strict=True):
            # A gap: the object is not in this slice; show where it is above and below.
            near = [labels[r] == obj for r in (z - 1, z + 1) if 0 <= r < labels.shape[0]]
            if near:
                mask = np.logical_or.reduce(near)
                out[z][mask] = np.maximum(out[z][mask], score)
    return out


@dataclass(frozen=True)
class Place:
    """One object of the worklist: where to look at it, why, and what fixing it is worth.

    Attributes
    ----------
    obj : int
        The object.
    z : int
        The slice where its expected gain is largest (where to look).
    gain : float
        Expected pixels put right: score x area, summed over every suspicious slice.
    score : float
        How sure the finder is that slice ``z`` is wrong, in [0, 1].
    area : int
        What is at stake in slice ``z``: the object's largest area in slices z-1..z+1.
    reason : str
        Why slice ``z`` is suspicious, with how many other slices are.
    centroid : tuple of float
        (y, x) of the object in slice ``z``.
    box : tuple of int
        (y0, x0, y1, x1), the object's box in slice ``z`` (its neighbours' for a gap).
    slices : tuple of int
        Every suspicious slice of the object, in order.
    """

    obj: int
    z: int
    gain: float
    score: float
    area: int
    reason: str
    centroid: tuple[float, float]
    box: tuple[int, int, int, int]
    slices: tuple[int, ...]


def _areas(labels: np.ndarray, zs: Iterable[int]) -> dict[int, dict[int, int]]:
    """{z: {id: pixels}} for the given slices and the slices next to them."""
    near = {r for z in zs for r in (z - 1, z, z + 1) if 0 <= r < labels.shape[0]}
    out = {}
    for z in sorted(near):
        ids, counts = np.unique(labels[z], return_counts=True)
        out[z] = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    return out


def _size_near(areas: dict[int, dict[int, int]], obj: int, z: int) -> int:
    """What an error of the object in slice z puts at stake: its largest area in z-1..z+1
    (a slice that lost most of the object is judged by what it should hold)."""
    return max(areas[r].get(obj, 0) for r in (z - 1, z, z + 1) if r in areas)


def _box(labels: np.ndarray, obj: int, z: int) -> tuple[int, int, int, int]:
    mask = labels[z] == obj
    if not mask.any():  # a gap: where it lies in the slices around
        near = [labels[r] == obj for r in (z - 1, z + 1) if 0 <= r < labels.shape[0]]
        mask = np.logical_or.reduce(near) if near else mask
    if not mask.any():
        return (0, 0, *labels.shape[1:])
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


def rank_places(
    labels: np.ndarray,
    suspicions: Iterable[Suspicion],
    *,
    limit: int | None = None,
    exclude: Iterable[int] = (),
) -> list[Place]:
    """The worklist: one :class:`Place` per suspicious object, largest expected gain first.

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
        The labels the suspicions were found in.
    suspicions : iterable of Suspicion
        From :func:`find_suspicious`.
    limit : int, optional
        Keep only the first ones.
    exclude : iterable of int
        Objects to leave out (e.g. those the user marked done).

    Examples
    --------
    >>> labels = np.zeros((5, 20, 20), np.uint16)
    >>> labels[:, 2:18, 2:10], labels[:, 2:18, 10:18] = 1, 2
    >>> labels[:, 0, 0] = 3  # a speck, ...
    >>> labels[2, 0, 0] = 0  # ... surely wrong: missing from slice 2
    >>> labels[2, 2:18, 2:8] = 2  # object 2 takes most of object 1 in slice 2
    >>> [(p.obj, p.z) for p in rank_places(labels, find_suspicious(labels))]
    [(2, 2), (1, 2), (3, 2)]
    """
    labels = np.asarray(labels)
    skip = {int(o) for o in exclude}
    by_object: dict[int, list[Suspicion]] = {}
    for s in suspicions:
        if s.obj not in skip:
            by_object.setdefault(s.obj, []).append(s)
    areas = _areas(labels, {s.z for items in by_object.values() for s in items})
    ranked = []
    for obj, items in by_object.items():
        weighted = [(s.score * _size_near(areas, obj, s.z), s) for s in items]
        gain = float(sum(w for w, _ in weighted))
        # Show the slice worth most; of equals, the one where the object looks most broken.
        best = max(weighted, key=lambda w: (w[0], -areas[w[1].z].get(obj, 0), -w[1].z))[1]
        ranked.append((gain, best, tuple(sorted(s.z for s in items))))
    ranked.sort(key=lambda entry: (-entry[0], entry[1].z, entry[1].obj))
    if limit is not None:
        ranked = ranked[: max(int(limit), 0)]
    places = []
    for gain, best, slices in ranked:
        others = len(slices) - 1
        more = f"; +{others} more slice{'s' * (others > 1)}" if others else ""
        places.append(
            Place(
                obj=best.obj,
                z=best.z,
                gain=gain,
                score=best.score,
                area=_size_near(areas, best.obj, best.z),
                reason=best.reason + more,
                centroid=best.centroid,
                box=_box(labels, best.obj, best.z),
                slices=slices,
            )
        )
    return places
