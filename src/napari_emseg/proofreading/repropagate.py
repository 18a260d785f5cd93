"""Repropagate corrected objects from one or more reference slices, keeping the user's work.

The slices between references are split among them: each slice takes its labels from the
nearest reference (ties go to the lower one) and slices beyond the outermost references from
the outermost one. A slice edited by hand is never overwritten and acts as one more reference,
so no propagation runs through it. Each reference's share is one call of a registered
propagator (:data:`napari_emseg.propagation.PROPAGATORS`); the guarantees are enforced here
again afterwards, whatever the method did.

With ``objects`` (the usual case: the ids corrected on the references) the work is confined to
the box of those objects grown by ``margin``, so correcting one neurite costs well under a
second on a 30 x 512 x 512 stack instead of a full propagation.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from napari_emseg._progress import CancelCheck, ProgressCallback, report
from napari_emseg.proofreading._ids import member
from napari_emseg.propagation import propagate
from napari_emseg.propagation.api import DEFAULT_METHOD, check_inputs


def fill_plan(anchors: Iterable[int], z_lo: int, z_hi: int) -> list[tuple[int, int, int]]:
    """(anchor, first, last) slices each anchor fills; nearest anchor wins, ties to the lower.

    Examples
    --------
    >>> fill_plan([3, 8], 0, 11)
    [(3, 0, 5), (8, 6, 11)]
    >>> fill_plan([2, 3], 2, 3)
    []
    """
    points = sorted(set(anchors))
    plan = []
    for i, a in enumerate(points):
        first = z_lo if i == 0 else (points[i - 1] + a) // 2 + 1
        last = z_hi if i == len(points) - 1 else (a + points[i + 1]) // 2
        if first < a or last > a:
            plan.append((a, first, last))
    return plan


def _crop(labels: np.ndarray, targets: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The (y, x) box of the targets over all the given slices, grown by ``margin``."""
    rows = np.zeros(labels.shape[1], bool)
    cols = np.zeros(labels.shape[2], bool)
    for plane in labels:  # slice by slice: no full-volume mask in memory
        mask = member(plane, targets)
        rows |= mask.any(axis=1)
        cols |= mask.any(axis=0)
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    if ys.size == 0:
        return None
    ny, nx = labels.shape[1:]
    return (
        slice(max(ys[0] - margin, 0), min(ys[-1] + 1 + margin, ny)),
        slice(max(xs[0] - margin, 0), min(xs[-1] + 1 + margin, nx)),
    )


def _validate(
    image: np.ndarray,
    labels: np.ndarray,
    membrane: np.ndarray | None,
    method: str,
    z_range: tuple[int, int] | None,
) -> tuple[int, int]:
    check_inputs(image, labels, membrane=membrane, method=method)
    depth = labels.shape[0]
    z_lo, z_hi = (0, depth - 1) if z_range is None else (int(z) for z in z_range)
    if not 0 <= z_lo <= z_hi < depth:
        raise ValueError(f"z_range {z_range} must be (first, last) within 0..{depth - 1}")
    return z_lo, z_hi


def _result_dtype(labels: np.ndarray, top: int) -> np.dtype:
    """The labels' dtype when every id fits, else the narrowest unsigned type that holds them."""
    if top <= np.iinfo(labels.dtype).max:
        return labels.dtype
    return np.dtype(np.uint32 if top <= np.iinfo(np.uint32).max else np.uint64)


def _id_array(ids: set[int], dtype: np.dtype) -> np.ndarray:
    """Ids as an array of the labels' dtype; ids that dtype cannot hold are in no voxel anyway."""
    info = np.iinfo(dtype)
    return np.array(sorted(i for i in ids if info.min <= i <= info.max), dtype)


def repropagate(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    references: Iterable[int],
    objects: Iterable[int] | None = None,
    locked: Iterable[int] = (),
    frozen_slices: Iterable[int] = (),
    z_range: tuple[int, int] | None = None,
    membrane: np.ndarray | None = None,
    method: str | None = None,
    margin: int = 32,
    model: str | None = None,
    device: str = "auto",
    method_options: dict | None = None,
    sparse: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> np.ndarray:
    """Propagate the objects of the reference slices again, without touching protected work.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X)
        The EM stack.
    labels : ndarray of int, shape (Z, Y, X)
        Current labels, with the corrected reference slices.
    references : iterable of int
        Corrected slices; at least one must lie in ``z_range``.
    objects : iterable of int, optional
        Repropagate only these ids: only voxels that belonged to them, or were 0, may change,
        and an id absent from a reference is released in the slices that reference fills (its
        voxels go to whoever floods them, e.g. the object it was merged into). Default: every
        object, with newcomers (cells that no object reaches) getting new ids.
    locked : iterable of int
        Ids whose voxels stay exactly as they are everywhere; they never grow.
    frozen_slices : iterable of int
        Slices edited by hand: unchanged, and used as references by the slices nearer to them.
    z_range : (int, int), optional
        Inclusive limits of the slices that may change.
    membrane : ndarray, optional
        Membrane probability (1 = membrane); predicted (on the crop only) when omitted.
    method : str, optional
        A propagation method (:func:`napari_emseg.propagation.list_methods`); the default one
        when None.
    margin : int
        With ``objects``, pixels added around their box; nothing outside it changes.
    model, device : str, optional
        Membrane model used when ``membrane`` is omitted; device of the membrane model and of
        a learned propagator.
    method_options : dict, optional
        Options of the method, e.g. ``{"pixel_nm": 8.0}`` for ``cconvlstm``.
    sparse : bool
        Sparse tracing (:mod:`napari_emseg.propagation.sparse`): the objects of the references
        are first grown from dots or scribbles to their cells (the only change a reference
        gets: unlabelled pixels), and unlabelled area never gets an id.
    progress, cancel : callable, optional
        ``progress(done, total, message)`` per slice; ``cancel()`` returning True stops with
        :class:`napari_emseg._progress.Cancelled`.

    Returns
    -------
    ndarray
        New labels (a copy), in the labels' dtype unless new ids need a wider one.

    Examples
    --------
    >>> image = np.full((5, 30, 30), 200, np.uint8)
    >>> membrane = np.zeros(image.shape, np.float32); membrane[:, :, 14:16] = 1
    >>> labels = np.zeros(image.shape, np.uint16)
    >>> labels[:, :, :15], labels[:, :, 15:] = 1, 2
    >>> labels[0, :, 15:] = 3; labels[4, :, 15:] = 4  # two references, distinctive ids
    >>> out = repropagate(image, labels, references=[0, 4], membrane=membrane)
    >>> [int(out[z, 5, 25]) for z in range(5)]
    [3, 3, 3, 4, 4]
    """
    image, labels = np.asarray(image), np.asarray(labels)
    method = method or DEFAULT_METHOD
    z_lo, z_hi = _validate(image, labels, membrane, method, z_range)
    refs = {int(z) for z in references}
    bad = sorted(z for z in refs if not 0 <= z < labels.shape[0])
    if bad:
        raise ValueError(f"reference slices {bad} are outside 0..{labels.shape[0] - 1}")
    if not any(z_lo <= z <= z_hi for z in refs):
        raise ValueError(f"no reference slice ({sorted(refs)}) lies in z_range {(z_lo, z_hi)}")
    frozen = {int(z) for z in frozen_slices} - refs
    anchors = {z for z in refs | frozen if z_lo <= z <= z_hi}
    plan = fill_plan(anchors, z_lo, z_hi)
    locked_ids = _id_array({int(i) for i in locked} - {0}, labels.dtype)
    targets = None
    if objects is not None:
        wanted = {int(o) for o in objects} - {0} - set(locked_ids.tolist())
        targets = _id_array(wanted, labels.dtype)
    if not plan or (targets is not None and targets.size == 0):
        return labels.copy()

    box = (slice(None), slice(None))
    if targets is not None:
        found = _crop(labels[z_lo : z_hi + 1], targets, margin)
        if found is None:
            return labels.copy()  # the objects are nowhere: nothing to propagate
        box = found
    region = (slice(z_lo, z_hi + 1), *box)
    if sparse:
        membrane = _membrane_of(image, membrane, region, model, device, method_options)
        labels = _grown_references(labels, membrane, region, refs, targets, method_options)
        method_options = {**(method_options or {}), "sparse": True}
    before = labels[region]
    if membrane is None:
        membrane = _membrane_of(image, None, region, model, device, method_options, progress)
    sub_membrane = membrane if membrane.shape == before.shape else membrane[region]
    after = _run_plan(
        image[region],
        before,
        sub_membrane,
        [(a - z_lo, first - z_lo, last - z_lo) for a, first, last in plan],
        targets=targets,
        locked_ids=locked_ids,
        next_id=int(labels.max(initial=0)) + 1,
        method=method,
        options={"device": device, **(method_options or {})},
        progress=progress,
        cancel=cancel,
    )
    after = _enforce(before, after, targets, locked_ids)
    for a in anchors:
        after[a - z_lo] = before[a - z_lo]
    out = labels.astype(_result_dtype(labels, int(after.max(initial=0))), copy=True)
    out[region] = after
    return out


def _membrane_of(image, membrane, region, model, device, options, progress=None, cancel=None):
    """The given map, or one predicted for the region only (then shaped like the region)."""
    if membrane is not None:
        return membrane
    from napari_emseg.inference.membrane import predict_membrane

    return predict_membrane(
        image[region],
        model=model,
        device=device,
        pixel_nm=(options or {}).get("pixel_nm"),
        progress=progress,
        cancel=cancel,
    )


def _grown_references(labels, membrane, region, refs, targets, options) -> np.ndarray:
    """Labels whose reference slices have their (target) objects grown to their cells."""
    from napari_emseg.propagation.api import grown_reference

    z_lo = region[0].start
    whole = membrane.shape == labels.shape
    labels = labels.copy()
    for z in sorted(refs):
        if not z_lo <= z < region[0].stop:
            continue
        plane = labels[z][region[1:]]
        map_2d = membrane[z][region[1:]] if whole else membrane[z - z_lo]
        labels[(z, *region[1:])] = grown_reference(
            plane,
            map_2d,
            objects=None if targets is None else targets.tolist(),
            pixel_nm=(options or {}).get("pixel_nm"),
        )
    return labels


def _run_plan(
    image: np.ndarray,
    labels: np.ndarray,
    membrane: np.ndarray,
    plan: list[tuple[int, int, int]],
    *,
    targets: np.ndarray | None,
    locked_ids: np.ndarray,
    next_id: int,
    method: str,
    options: dict,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> np.ndarray:
    """Run the propagator once per anchor over its share of the (cropped) stack."""
    objects: list[int] | None = None if targets is None else targets.tolist()
    options = dict(options)
    if targets is None and locked_ids.size:
        # Everything moves except the locked objects, which stay fixed; newcomers still enter.
        present = np.unique(labels)
        objects = np.setdiff1d(present[present != 0], locked_ids).tolist()
        options["newcomers"] = True
    work = labels.astype(np.uint64 if labels.dtype.itemsize == 8 else np.uint32, copy=True)
    total = sum(last - first for _, first, last in plan)
    done = 0
    for anchor, first, last in plan:

        def step(d: int, _t: int, message: str, base: int = done) -> None:
            report(progress, base + d, total, message)

        top = int(work.max(initial=0))
        result = propagate(
            image,
            work,
            anchor,
            membrane=membrane,
            method=method,
            z_range=(first, last),
            objects=objects,
            progress=step,
            cancel=cancel,
            **options,
        )
        # Newcomers are numbered after the crop's largest id: move them past the whole volume's.
        fresh = result > top
        if fresh.any():
            shift = next_id - top - 1
            if int(result.max()) + shift > np.iinfo(result.dtype).max:
                result = result.astype(np.uint64)
            result[fresh] += np.asarray(shift).astype(result.dtype)
            next_id = int(result.max()) + 1
            if result.dtype != work.dtype:
                work = work.astype(result.dtype)
        work[first : last + 1] = result[first : last + 1]
        done += last - first
    return work


def _enforce(
    before: np.ndarray,
    after: np.ndarray,
    targets: np.ndarray | None,
    locked_ids: np.ndarray,
) -> np.ndarray:
    """Undo whatever the method did beyond its rights (cheap when it behaved)."""
    before = before.astype(after.dtype, copy=False)  # ids >= 0: no mixed signed/unsigned
    if targets is not None:
        # Only target or 0 voxels may change, and only to a target id or 0.
        free = member(before, targets) | (before == 0)
        allowed = member(after, targets) | (after == 0)
        after = np.where(free, np.where(allowed, after, 0), before)
    if locked_ids.size:
        was = member(before, locked_ids)
        grew = member(after, locked_ids) & ~was
        after = np.where(was, before, np.where(grew, 0, after))
    return after
