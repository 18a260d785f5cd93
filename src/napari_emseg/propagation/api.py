"""The ``propagate`` entry point and the registry of propagation methods."""

from collections.abc import Iterable

import numpy as np

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel
from napari_emseg._timing import timed
from napari_emseg.propagation.registry import PROPAGATORS, get_propagator
from napari_emseg.propagation.sparse import drop_placeholders, grow_scribbles, is_sparse
from napari_emseg.segmentation.supervoxels import supervoxel_vote
from napari_emseg.segmentation.watershed import watershed_slice

DEFAULT_METHOD = "watershed"
# From a watershed-made reference (Segment), the learned propagator is the better one on both
# held-out data sets; from a corrected reference it is not everywhere (docs/propagation.md).
AUTOMATIC_METHOD = "cconvlstm"
# What makes the result consistent in 3D after a method ran: "supervoxels" lets supervoxels of
# the membrane map take the id most of their voxels were given (segmentation/supervoxels.py; 3D
# supervoxels for near-isotropic voxels, 2D per slice for thick sections), "none" keeps the
# method's result. The vote lowered the error of both methods on both held-out data sets
# (docs/results/supervoxel-vote.md).
CONSISTENCY = ("supervoxels", "none")
DEFAULT_CONSISTENCY = "supervoxels"


def window_stride(method: str, options: dict | None = None) -> int:
    """Slices from the start of one of a method's z windows to the next (1: slice by slice).

    Windows start at the reference slice and every ``stride`` slices from it, so a propagation
    started on one of those slices predicts as one run from the reference does there.

    Examples
    --------
    >>> window_stride("cconvlstm"), window_stride("watershed")
    (4, 1)
    """
    return get_propagator(method).stride(options)


def list_methods() -> list[str]:
    """Registered propagation methods, the default first."""
    return [DEFAULT_METHOD, *sorted(m for m in PROPAGATORS if m != DEFAULT_METHOD)]


def _resolve_range(z_range: tuple[int, int] | None, ref_slice: int, depth: int) -> tuple[int, int]:
    if z_range is None:
        return 0, depth - 1
    z_lo, z_hi = (int(z) for z in z_range)
    if not (0 <= z_lo <= ref_slice <= z_hi < depth):
        raise ValueError(
            f"z_range {z_range} must lie within 0..{depth - 1} and contain the reference slice "
            f"{ref_slice}"
        )
    return z_lo, z_hi


# Methods index lookup tables by id (one entry per id up to the largest), so huge ids (hashed or
# uint64 ids from other tools) would need gigabytes, and uint64 ids mixed with int64 arithmetic
# become floats in NumPy. Above this id the labels are renumbered 1..n (order kept) first.
_COMPACT_ABOVE = 1 << 20


def _compact_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels renumbered 0, 1..n in id order and the sorted ids, or (labels, None) if not needed."""
    top = int(labels.max()) if labels.size else 0
    if labels.dtype != np.uint64 and top < _COMPACT_ABOVE:
        return labels, None
    ids, inverse = np.unique(labels, return_inverse=True)
    if ids[0] != 0:
        ids = np.concatenate([np.zeros(1, ids.dtype), ids])
        inverse = inverse + 1
    return inverse.reshape(labels.shape).astype(np.uint32), ids


def _expand_ids(out: np.ndarray, ids: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Undo :func:`_compact_ids`; newcomers (ids past the last one) follow the original maximum."""
    last = ids.size - 1
    top = int(ids[-1])
    new = int(out.max()) - last if out.size else 0
    kind = np.dtype(np.uint32 if dtype.itemsize <= 4 else dtype)
    if new > 0 and top + new > np.iinfo(kind).max:
        kind = np.dtype(np.uint64 if kind.kind == "u" else np.int64)
        if top + new > np.iinfo(kind).max:
            raise ValueError(f"labels hold ids up to {top}: no room for new ids; relabel them")
    table = np.concatenate(
        [ids.astype(kind), top + np.arange(1, max(new, 0) + 1, dtype=np.uint64).astype(kind)]
    )
    return table[out]


def check_inputs(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    membrane: np.ndarray | None = None,
    method: str = DEFAULT_METHOD,
    consistency: str = DEFAULT_CONSISTENCY,
) -> None:
    """Refuse, with one clear message, inputs no propagation method can use."""
    if labels.ndim != 3:
        raise ValueError(f"labels must be a (Z, Y, X) volume, got shape {labels.shape}")
    if image.shape != labels.shape:
        raise ValueError(f"image shape {image.shape} and labels shape {labels.shape} differ")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise ValueError("labels contain negative ids")
    if membrane is not None and membrane.shape != labels.shape:
        raise ValueError(f"membrane shape {membrane.shape} and labels shape {labels.shape} differ")
    get_propagator(method)
    if consistency not in CONSISTENCY:
        raise ValueError(f"unknown consistency {consistency!r}; choose one of: {list(CONSISTENCY)}")


def _vote(
    out: np.ndarray,
    labels: np.ndarray,
    membrane: np.ndarray,
    ref_slice: int,
    z_lo: int,
    z_hi: int,
    targets: set[int] | None,
    voxel_size: tuple[float, float, float] | None,
    threshold: float | None = None,
) -> np.ndarray:
    """The supervoxel vote on ``out[z_lo:z_hi + 1]``; other objects stay fixed with targets."""
    fixed: list[int] = []
    if targets is not None:
        present = np.unique(labels)
        fixed = [int(i) for i in present if i != 0 and int(i) not in targets]
    span = slice(z_lo, z_hi + 1)
    out[span] = supervoxel_vote(
        out[span],
        membrane[span],
        voxel_size=voxel_size,
        threshold=threshold,
        fixed_slices=[ref_slice - z_lo],
        fixed_ids=fixed,
    )
    return out


def grown_reference(
    labels_2d: np.ndarray,
    membrane_2d: np.ndarray,
    *,
    objects: Iterable[int] | None = None,
    pixel_nm: float | None = None,
) -> np.ndarray:
    """A reference slice whose objects (all, or ``objects``) are grown from dots or scribbles
    to their cells of the membrane map (:func:`~.sparse.grow_scribbles`); other pixels as
    they were."""
    reference = labels_2d
    if objects is not None:
        reference = np.where(np.isin(labels_2d, [int(o) for o in objects]), labels_2d, 0)
    grown = grow_scribbles(reference, watershed_slice(membrane_2d, pixel_nm=pixel_nm))
    return np.where((reference == 0) & (labels_2d == 0), grown, labels_2d).astype(labels_2d.dtype)


def _sparse_reference(
    labels: np.ndarray,
    ref_slice: int,
    membrane: np.ndarray,
    objects: Iterable[int] | None,
    options: dict,
) -> tuple[np.ndarray, list[int]]:
    """Labels whose reference has its dots grown to their cells, and the objects to carry."""
    labels = labels.copy()
    labels[ref_slice] = grown_reference(
        labels[ref_slice], membrane[ref_slice], objects=objects, pixel_nm=options.get("pixel_nm")
    )
    carried = np.unique(labels[ref_slice])
    if objects is not None:
        carried = carried[np.isin(carried, [int(o) for o in objects])]
    return labels, [int(i) for i in carried if i != 0]


def _with_placeholders(
    labels: np.ndarray, ref_slice: int, membrane: np.ndarray, options: dict
) -> tuple[np.ndarray, int]:
    """Labels whose reference slice has every unlabelled cell as a placeholder object (ids
    from the returned one on): in a sparse run the traced objects meet their unlabelled
    neighbours as real competitors, as in a dense run, and the placeholders are dropped after."""
    cells = watershed_slice(membrane[ref_slice], pixel_nm=options.get("pixel_nm")).astype(np.int64)
    first = int(labels.max()) + 1
    top = first + int(cells.max(initial=0))
    dtype = labels.dtype if top <= np.iinfo(labels.dtype).max else np.dtype(np.uint64)
    out = labels.astype(dtype, copy=True)
    free = (labels[ref_slice] == 0) & (cells > 0)
    out[ref_slice][free] = (cells[free] + first - 1).astype(dtype)
    return out, first


def propagate(
    image: np.ndarray,
    labels: np.ndarray,
    ref_slice: int,
    *,
    membrane: np.ndarray | None = None,
    method: str = DEFAULT_METHOD,
    z_range: tuple[int, int] | None = None,
    objects: Iterable[int] | None = None,
    model: str | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    consistency: str = DEFAULT_CONSISTENCY,
    voxel_size: tuple[float, float, float] | None = None,
    sparse: bool | None = False,
    vote_threshold: float | None = None,
    **options,
) -> np.ndarray:
    """Propagate the objects of ``labels[ref_slice]`` up and down through the stack.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X)
        The EM stack.
    labels : ndarray of int, shape (Z, Y, X)
        Current labels; slice ``ref_slice`` is the (corrected) reference.
    ref_slice : int
        Index of the reference slice; it is returned unchanged.
    membrane : ndarray, optional
        Membrane probability (1 = membrane); computed with ``model`` when a method needs it.
    method : str
        A name from :func:`list_methods`.
    z_range : (int, int), optional
        Inclusive limits of the slices to fill; other slices are returned unchanged.
    objects : iterable of int, optional
        Propagate only these ids; all other ids keep their voxels. Default: every object of
        the reference slice, plus objects that enter the volume later (they get new ids).
    consistency : {"supervoxels", "none"}
        ``"supervoxels"`` (the default, ``DEFAULT_CONSISTENCY``): after the method, supervoxels
        of the membrane map in ``z_range`` take the id most of their voxels were given, so
        outlines follow membranes in 3D
        (:func:`~napari_emseg.segmentation.supervoxels.supervoxel_vote`); the reference
        slice still votes but is not changed, and with ``objects`` only those objects (and
        newcomers) change. ``"none"``: the method's result as it is.
    voxel_size : (float, float, float), optional
        (z, y, x) voxel size in nm. It decides 3D or per-slice supervoxels (sections at least
        ``ANISOTROPY_LIMIT`` times thicker than pixels are per slice) and, unless
        ``pixel_nm`` is given, the in-plane pixel size the methods convert their nm sizes
        with. Default:
        unknown; the anisotropy is then estimated from the membrane map
        (:func:`~napari_emseg.segmentation.supervoxels.membrane_anisotropy`).
    sparse : bool or None
        Sparse tracing (:mod:`~.sparse`): carry exactly the objects of the reference, grown
        from dots or scribbles to their cells on the reference slice (the only change to that
        slice: unlabelled pixels of those cells); unlabelled area never gets an id. False
        (the default here): dense, cells no object reaches enter as new ids. None: sparse
        when the reference labels less than half of its slice (:func:`~.sparse.is_sparse`).
    vote_threshold : float, optional
        Threshold of the vote's supervoxels (default: the supervoxels' own), e.g. as a
        calibration chose it on the corrected slice.
    **options
        Options of the method (e.g. ``pixel_nm``, the in-plane pixel size).

    Returns
    -------
    ndarray
        New labels (a copy; the input is not modified), dtype of ``labels`` or wider.

    Examples
    --------
    >>> image = np.full((3, 40, 40), 200, np.uint8); image[:, :, 19:21] = 30
    >>> labels = np.zeros((3, 40, 40), np.uint32)
    >>> labels[1, :, :19], labels[1, :, 21:] = 1, 2
    >>> out = propagate(image, labels, 1)
    >>> [sorted(np.unique(out[z]).tolist()) for z in range(3)]
    [[1, 2], [0, 1, 2], [1, 2]]
    """
    image = np.asarray(image)
    labels = np.asarray(labels)
    ref_slice = int(ref_slice)
    check_inputs(image, labels, membrane=membrane, method=method, consistency=consistency)
    if not 0 <= ref_slice < labels.shape[0]:
        raise ValueError(f"reference slice {ref_slice} is outside 0..{labels.shape[0] - 1}")
    z_lo, z_hi = _resolve_range(z_range, ref_slice, labels.shape[0])
    if voxel_size is not None:
        options.setdefault("pixel_nm", float(voxel_size[2]))
    if sparse is None:
        sparse = is_sparse(labels[ref_slice])
    if membrane is None:
        from napari_emseg.inference.membrane import predict_membrane

        membrane = predict_membrane(
            image,
            model=model,
            device=device,
            pixel_nm=options.get("pixel_nm"),
            progress=progress,
            cancel=cancel,
        )
    carry, placeholder = labels, None
    if sparse:
        labels, objects = _sparse_reference(labels, ref_slice, membrane, objects, options)
        carry, placeholder = _with_placeholders(labels, ref_slice, membrane, options)
        options["newcomers"] = True  # competitors that bound the traced objects, dropped below
    targets = None if objects is None else {int(o) for o in objects if int(o) != 0}
    work, ids = _compact_ids(carry)
    first_new = int(work.max()) + 1
    if ids is not None and targets is not None:
        compact = {int(i): n for n, i in enumerate(ids.tolist())}
        targets = {compact[t] for t in targets if t in compact}
    traced = targets
    if placeholder is not None:
        first_new = placeholder if ids is None else int(np.searchsorted(ids, placeholder))
        traced = set(targets or ())
        targets = traced | set(range(first_new, int(work.max()) + 1))
    record = get_propagator(method)
    if "voxel_size" in record.options:
        options["voxel_size"] = voxel_size
    out = record.run(
        image,
        work,
        ref_slice,
        membrane=membrane,
        z_lo=z_lo,
        z_hi=z_hi,
        objects=targets,
        device=device,
        progress=progress,
        cancel=cancel,
        **options,
    )
    if consistency == "supervoxels" and record.vote:
        check_cancel(cancel)
        with timed("vote"):
            out = _vote(
                out, work, membrane, ref_slice, z_lo, z_hi, targets, voxel_size, vote_threshold
            )
    if sparse:
        out = drop_placeholders(out, work, first_new, np.array(sorted(traced or ()), work.dtype))
    if ids is not None:
        out = _expand_ids(out, ids, labels.dtype)
    # The user's slice is sacred, whatever the method did (in sparse mode: with its dots grown).
    out[ref_slice] = labels[ref_slice]
    out[:z_lo] = labels[:z_lo]
    out[z_hi + 1 :] = labels[z_hi + 1 :]
    return out
