"""The one facade of the engine: the CLI, the widgets and Python users call only this.

It owns the defaults (membrane model, propagation method, reference slice, voxel size) and
resolves the device once per call, so every entry point behaves the same. Images may be plain
arrays or :class:`~napari_emseg.io.Volume` objects, whose voxel size then travels with them.
Progress is a plain callback ``progress(done, total, message)``; ``cancel`` a plain callable.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_emseg._progress import CancelCheck, Cancelled, ProgressCallback, stage_progress
from napari_emseg._timing import timed
from napari_emseg.segmentation.normalization import check_has_content

if TYPE_CHECKING:
    from napari_emseg.io import Volume

VoxelSize = tuple[float, float, float]
NO_PROPAGATION = "none"
# How segment makes its first labels: "agglomeration" of 3D supervoxels of the membrane map
# (near-isotropic voxels, e.g. FIB-SEM), or a 2D "watershed" of one slice propagated through z
# (thick sections); "auto" picks by the voxel size, or by the map's own anisotropy.
STARTS = ("auto", "agglomeration", "watershed")
# Chosen on the gala FIB-SEM train block (docs/accuracy.md): supervoxels of the map smoothed by
# 1 px, merged across faces whose mean membrane value is below 0.8.
AGGLOMERATION_THRESHOLD = 0.8
AGGLOMERATION_SIGMA = 1.0
# The membrane networks and ISBI 2012 are 4 nm ssTEM: the size assumed when a file gives none.
ASSUMED_PIXEL_NM = 4.0
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # "cuda:N" is accepted too
__all__ = [
    "Cancelled",
    "Propagation",
    "Segmentation",
    "VoxelSizeWarning",
    "adapt",
    "default_method",
    "evaluate",
    "list_methods",
    "list_models",
    "predict_membrane",
    "propagate",
    "read_volume",
    "repropagate",
    "resolve_device",
    "segment",
]


class VoxelSizeWarning(UserWarning):
    """The voxel size matters for this operation but is unknown: a default is assumed."""


@dataclass
class Segmentation:
    """Result of :func:`segment`: the membrane map and the instance labels.

    ``notes`` are one-line messages for the user (what was assumed, estimated or chosen);
    ``calibration`` what was chosen on corrected slices, when any were given.
    """

    membrane: np.ndarray
    labels: np.ndarray
    ref_slice: int | None
    notes: list[str] = field(default_factory=list)
    calibration: Any = None


@dataclass
class Propagation:
    """Result of :func:`propagate` and :func:`repropagate`.

    Attributes
    ----------
    labels : ndarray
        The new labels (a copy); ``np.asarray(result)`` gives them too.
    sparse : bool
        Whether the reference was traced sparsely (only its objects were carried; see
        :mod:`napari_emseg.propagation.sparse`) or densely.
    notes : list of str
        One-line messages for the user (what was assumed, estimated or chosen).
    calibration : object or None
        What was chosen on the corrected slices, with its scores, when calibration ran.
    """

    labels: np.ndarray
    sparse: bool = False
    notes: list[str] = field(default_factory=list)
    calibration: Any = None

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.labels, dtype=dtype)


# -- defaults and choices -------------------------------------------------------------------------
def list_models() -> list[str]:
    """Registered membrane models, the default first."""
    from napari_emseg.models.cards import list_models as registered

    return registered()


def list_methods() -> list[str]:
    """Registered propagation methods, the default (from a corrected reference) first."""
    from napari_emseg.propagation import list_methods as registered

    return registered()


def default_method(*, interactive: bool = False) -> str:
    """The propagation method used when none is given.

    The consistent ConvLSTM, followed by the supervoxel vote, had the lowest error from a
    corrected reference slice on the training data (gala train block, ISBI slices 0-19) and on
    the held-out data (docs/results/supervoxel-vote.md). ``interactive`` is for the Proofread
    widget's targeted repropagation, where a person waits for every call: the classical
    propagator is 20-60x faster on a CPU.
    """
    from napari_emseg.propagation.api import AUTOMATIC_METHOD, DEFAULT_METHOD

    return DEFAULT_METHOD if interactive else AUTOMATIC_METHOD


def check_model(model: str | None) -> str:
    """The name of a registered membrane model or the path of a model card; a one-line
    ``ValueError`` for anything else."""
    from napari_emseg.models.cards import get_card

    return get_card(model).name


def resolve_device(device: str | None = "auto") -> str:
    """The device a network will run on (``"cpu"``, ``"cuda:0"``, ...), checked once.

    Raises ``ValueError`` with a one-line message when the device is unknown or absent.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    from napari_emseg.inference.devices import resolve_device as to_torch

    return str(to_torch(device or "auto"))


# -- data -----------------------------------------------------------------------------------------
def read_volume(
    spec: str,
    *,
    voxel_size: VoxelSize | None = None,
    as_labels: bool | None = None,
    lazy: bool = False,
) -> Volume:
    """Read a stack (TIFF, slice folder, HDF5, Zarr); ``voxel_size`` (nm) overrides the file's.

    See :func:`napari_emseg.io.read_volume` for the formats and the labels guess.
    """
    from napari_emseg.io import read_volume as read

    volume = read(spec, as_labels=as_labels, lazy=lazy)
    if voxel_size is not None:
        volume = replace(volume, scale=checked_voxel_size(voxel_size), unit="nm")
    return volume


def checked_voxel_size(voxel_size: Iterable[float]) -> VoxelSize:
    size = tuple(float(v) for v in voxel_size)
    if len(size) != 3 or not all(np.isfinite(v) and v > 0 for v in size):
        raise ValueError(f"voxel size must be three positive numbers (z, y, x) in nm, got {size}")
    return size  # type: ignore[return-value]


def _unpack(image: Any, voxel_size: VoxelSize | None) -> tuple[np.ndarray, VoxelSize | None]:
    """The array of an image or Volume, and its voxel size in nm (``voxel_size`` wins)."""
    from napari_emseg.io import Volume

    if isinstance(image, Volume):
        if voxel_size is None and image.unit == "nm":
            voxel_size = image.scale
        image = image.data
    size = None if voxel_size is None else checked_voxel_size(voxel_size)
    return np.asarray(image), size


def _pixel_nm(voxel_size: VoxelSize | None, *, why: str) -> float:
    """In-plane pixel size; when unknown, say once which one is assumed."""
    if voxel_size is not None:
        return float(voxel_size[-1])
    warnings.warn(
        f"voxel size unknown: assuming {ASSUMED_PIXEL_NM:g} nm pixels for {why}; give the "
        "voxel size if it differs",
        VoxelSizeWarning,
        stacklevel=3,
    )
    return ASSUMED_PIXEL_NM


def method_options(
    method: str,
    voxel_size: VoxelSize | None,
    *,
    variant: str | None = None,
    weights: str | None = None,
) -> dict:
    """Options a propagation method takes from the data: the pixel size its nm sizes are
    converted with, and the learned method's network.

    Examples
    --------
    >>> method_options("watershed", (10.0, 10.0, 10.0))
    {'pixel_nm': 10.0}
    >>> method_options("cconvlstm", (50.0, 4.0, 4.0), variant="st")
    {'pixel_nm': 4.0, 'variant': 'st'}
    """
    if method != "cconvlstm" and (variant is not None or weights is not None):
        raise ValueError("a network variant or weights apply to the cconvlstm method only")
    options: dict[str, Any] = {"pixel_nm": _pixel_nm(voxel_size, why=f"the {method} method")}
    if variant is not None:
        options["variant"] = variant
    if weights is not None:
        options["weights"] = weights
    return options


# -- operations -----------------------------------------------------------------------------------
def predict_membrane(
    image: Any,
    *,
    model: str | None = None,
    device: str = "auto",
    voxel_size: VoxelSize | None = None,
    value_range: tuple[float, float] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> np.ndarray:
    """Membrane probability (float32, [0, 1], 1 = membrane) of a (Z, Y, X) stack.

    Examples
    --------
    >>> stack = np.full((1, 32, 32), 200, np.uint8); stack[:, 16] = 40
    >>> prob = predict_membrane(stack, model="ridge")
    >>> prob.shape, bool(prob[0, 16, 8] > 0.5)
    ((1, 32, 32), True)
    """
    from napari_emseg.inference.membrane import predict_membrane as predict

    array, voxel = _unpack(image, voxel_size)
    if value_range is None:  # a block of a larger volume may be blank; a whole volume not
        check_has_content(array)
    return predict(
        array,
        model=model,
        device=device,
        value_range=value_range,
        pixel_nm=None if voxel is None else voxel[-1],
        progress=progress,
        cancel=cancel,
    )


def segment(
    image: Any,
    *,
    model: str | None = None,
    device: str = "auto",
    voxel_size: VoxelSize | None = None,
    ref_slice: int | None = None,
    propagation: str | None = None,
    start: str = "auto",
    value_range: tuple[float, float] | None = None,
    propagation_options: dict | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Segmentation:
    """Membrane map and 3D instance labels of an EM stack.

    ``start="watershed"``: a 2D watershed labels the reference slice (the middle slice by
    default) and the chosen propagator carries its objects through z, so ids are consistent
    in 3D; the default propagator is :func:`default_method`.
    ``start="agglomeration"``: 3D supervoxels of the membrane map merged across faint faces
    (ids consistent in 3D at once; no propagation). ``"auto"`` (the default) agglomerates
    near-isotropic volumes and propagates through thick sections (:data:`STARTS`). With
    ``propagation="none"`` every slice is segmented on its own (ids unique, not linked in z).
    ``value_range`` fixes the intensities mapped to 0 and 1 (default: the stack's 0.5 and 99.5
    percentiles; :mod:`napari_emseg.blockwise` passes the whole volume's).
    ``propagation_options`` go to the propagator on top of those :func:`method_options` derives.

    Examples
    --------
    >>> from napari_emseg.datasets.synthetic import make_synthetic_stack
    >>> stack = make_synthetic_stack((4, 96, 96))
    >>> result = segment(stack.image, model="ridge", propagation="watershed")
    >>> result.labels.shape, result.labels.dtype
    ((4, 96, 96), dtype('uint32'))
    """
    from napari_emseg.segmentation.watershed import watershed_slice, watershed_stack

    array, voxel = _unpack(image, voxel_size)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"expected a non-empty (Z, Y, X) stack, got shape {array.shape}")
    if value_range is None:
        check_has_content(array)
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; choose one of: {', '.join(STARTS)}")
    depth = array.shape[0]
    ref = depth // 2 if ref_slice is None else int(ref_slice)
    if propagation != NO_PROPAGATION and not 0 <= ref < depth:
        raise ValueError(f"reference slice {ref} is outside 0..{depth - 1}")
    method = propagation or default_method()
    device = resolve_device(device) if _needs_network(model, method) else "cpu"
    from napari_emseg.inference.membrane import predict_membrane as predict

    pixel = None if voxel is None else voxel[-1]
    with timed("membrane"):
        membrane = predict(
            array,
            model=model,
            device=device,
            value_range=value_range,
            pixel_nm=pixel,
            progress=stage_progress(progress, 0.0, 0.5, "membrane"),
            cancel=cancel,
        )
    if method == NO_PROPAGATION:
        labels = watershed_stack(
            membrane,
            pixel_nm=pixel,
            progress=stage_progress(progress, 0.5, 1.0, "watershed"),
            cancel=cancel,
        )
        return Segmentation(membrane, labels, None)
    # Under "auto", a propagator the caller chose means a start from one slice.
    chosen = "watershed" if start == "auto" and propagation is not None else start
    if _starts_with_agglomeration(chosen, voxel, membrane):
        with timed("agglomeration"):
            return Segmentation(membrane, agglomerate(membrane, voxel_size=voxel), ref)
    options = method_options(method, voxel)
    labels = np.zeros(array.shape, np.uint32)
    with timed("reference"):
        labels[ref] = watershed_slice(membrane[ref], pixel_nm=pixel)
    from napari_emseg.propagation import propagate as run_propagation

    labels = run_propagation(
        array,
        labels,
        ref,
        membrane=membrane,
        method=method,
        device=device,
        progress=stage_progress(progress, 0.5, 1.0, "propagation"),
        cancel=cancel,
        voxel_size=voxel,
        **{**options, **(propagation_options or {})},
    )
    return Segmentation(membrane, labels, ref)


def _starts_with_agglomeration(start: str, voxel: VoxelSize | None, membrane: np.ndarray) -> bool:
    from napari_emseg.segmentation.supervoxels import is_anisotropic

    if start != "auto":
        return start == "agglomeration"
    return membrane.shape[0] > 1 and not is_anisotropic(voxel, membrane)


def agglomerate(membrane: np.ndarray, *, voxel_size: VoxelSize | None = None) -> np.ndarray:
    """3D labels from a membrane map alone: supervoxels merged across faint faces (uint32,
    consecutive ids), with the thresholds chosen on training data."""
    from skimage.segmentation import relabel_sequential

    from napari_emseg.segmentation.supervoxels import membrane_supervoxels

    supervoxels = membrane_supervoxels(
        membrane,
        threshold=AGGLOMERATION_THRESHOLD,
        sigma=AGGLOMERATION_SIGMA,
        voxel_size=voxel_size,
        per_slice=False,
    )
    return relabel_sequential(supervoxels)[0].astype(np.uint32)


def _needs_network(model: str | None, method: str | None) -> bool:
    from napari_emseg.models.cards import get_card

    return get_card(model).needs_torch or method == "cconvlstm"


def propagate(
    image: Any,
    labels: np.ndarray,
    ref_slice: int,
    *,
    membrane: np.ndarray | None = None,
    method: str | None = None,
    model: str | None = None,
    device: str = "auto",
    voxel_size: VoxelSize | None = None,
    variant: str | None = None,
    weights: str | None = None,
    z_range: tuple[int, int] | None = None,
    objects: Iterable[int] | None = None,
    sparse: bool | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Propagation:
    """Propagate the objects of ``labels[ref_slice]`` up and down through the stack.

    ``method`` defaults to :func:`default_method`; ``variant`` and ``weights`` choose the
    network of ``cconvlstm``; the membrane map is predicted with ``model`` when not given.
    ``sparse`` (default: from the reference's coverage) carries exactly the reference's
    objects, grown from dots to their cells, and gives unlabelled area no id
    (:mod:`napari_emseg.propagation.sparse`). See :func:`napari_emseg.propagation.propagate`
    for the guarantees. A reference slice with no object is refused (``ValueError``).

    Examples
    --------
    >>> image = np.full((3, 40, 40), 200, np.uint8); image[:, :, 19:21] = 30
    >>> labels = np.zeros((3, 40, 40), np.uint32)
    >>> labels[1, :, :19], labels[1, :, 21:] = 1, 2
    >>> out = propagate(image, labels, 1, model="ridge")
    >>> [sorted(np.unique(out.labels[z]).tolist()) for z in range(3)], out.sparse
    ([[1, 2], [0, 1, 2], [1, 2]], False)
    """
    from napari_emseg.propagation import propagate as run_propagation
    from napari_emseg.propagation.sparse import is_sparse

    array, voxel = _unpack(image, voxel_size)
    labels = np.asarray(labels)
    _check_reference(labels, [ref_slice], objects)
    method = method or default_method()
    options = method_options(method, voxel, variant=variant, weights=weights)
    sparse = is_sparse(labels[int(ref_slice)]) if sparse is None else bool(sparse)
    out = run_propagation(
        array,
        labels,
        ref_slice,
        membrane=membrane,
        method=method,
        z_range=z_range,
        objects=objects,
        model=model,
        device=_device_for(model, method, membrane, device),
        progress=progress,
        cancel=cancel,
        voxel_size=voxel,
        sparse=sparse,
        **options,
    )
    return Propagation(out, sparse)


def _check_reference(
    labels: np.ndarray, slices: Iterable[int], objects: Iterable[int] | None = None
) -> None:
    """Refuse references that hold nothing to propagate (one line, ``ValueError``)."""
    if labels.ndim != 3:
        raise ValueError(f"labels must be a (Z, Y, X) volume, got shape {labels.shape}")
    wanted = None if objects is None else [int(o) for o in objects]
    for z in slices:
        if not 0 <= int(z) < labels.shape[0]:
            raise ValueError(f"reference slice {z} is outside 0..{labels.shape[0] - 1}")
        plane = labels[int(z)]
        if plane.any() if wanted is None else np.isin(plane, wanted).any():
            return
    which = ", ".join(str(int(z)) for z in slices)
    raise ValueError(
        f"reference slice {which} holds no object to propagate: paint or correct the objects "
        "on the slice you edited and choose that slice"
    )


def _sparse_references(labels: np.ndarray, references: Iterable[int]) -> bool:
    from napari_emseg.propagation.sparse import SPARSE_COVERAGE, coverage

    shares = [coverage(labels[int(z)]) for z in references]
    return bool(np.mean(shares) < SPARSE_COVERAGE) if shares else False


def _device_for(model: str | None, method: str, membrane: Any, device: str) -> str:
    needs = method == "cconvlstm" or (membrane is None and _needs_network(model, None))
    return resolve_device(device) if needs else "cpu"


def repropagate(
    image: Any,
    labels: np.ndarray,
    *,
    references: Iterable[int],
    objects: Iterable[int] | None = None,
    locked: Iterable[int] = (),
    frozen_slices: Iterable[int] = (),
    z_range: tuple[int, int] | None = None,
    membrane: np.ndarray | None = None,
    method: str | None = None,
    model: str | None = None,
    device: str = "auto",
    voxel_size: VoxelSize | None = None,
    variant: str | None = None,
    weights: str | None = None,
    sparse: bool | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Propagation:
    """Propagate again from corrected reference slices, keeping locked objects and hand-edited
    slices; see :func:`napari_emseg.proofreading.repropagate`. ``sparse`` as in
    :func:`propagate` (default: from the references' mean coverage)."""
    from napari_emseg.proofreading import repropagate as run_repropagation

    array, voxel = _unpack(image, voxel_size)
    labels = np.asarray(labels)
    references = [int(z) for z in references]
    if objects is None:
        _check_reference(labels, references)
    method = method or default_method(interactive=True)
    sparse = _sparse_references(labels, references) if sparse is None else bool(sparse)
    out = run_repropagation(
        array,
        labels,
        references=references,
        objects=objects,
        locked=locked,
        frozen_slices=frozen_slices,
        z_range=z_range,
        membrane=membrane,
        method=method,
        model=model,
        device=_device_for(model, method, membrane, device),
        method_options={
            **method_options(method, voxel, variant=variant, weights=weights),
            "voxel_size": voxel,
        },
        sparse=sparse,
        progress=progress,
        cancel=cancel,
    )
    return Propagation(out, sparse)


def adapt(
    image: Any,
    labels: np.ndarray,
    ref_slices: int | Iterable[int],
    *,
    out: str,
    model: str | None = None,
    device: str = "auto",
    voxel_size: VoxelSize | None = None,
    steps: int | None = None,
    time_budget_s: float | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Any:
    """Fine-tune the membrane network on corrected reference slices; returns the new model
    card (a ``.json`` with its sha256-checked weights beside it), usable as ``model=`` anywhere.

    ``steps`` and ``time_budget_s`` default to :mod:`napari_emseg.training.adapt`'s (a few
    hundred steps, at most 60 s on two CPU cores).
    """
    from napari_emseg.training import adapt as adaptation

    array, voxel = _unpack(image, voxel_size)
    refs = [int(ref_slices)] if np.isscalar(ref_slices) else [int(z) for z in ref_slices]
    budget = {"steps": steps} if steps is not None else {}
    if time_budget_s is not None:
        budget["time_budget_s"] = time_budget_s
    return adaptation.adapt(
        array,
        np.asarray(labels),
        refs,
        out=out,
        model=model or adaptation.DEFAULT_BASE_MODEL,
        device=resolve_device(device),
        pixel_nm=None if voxel is None else voxel[-1],
        overwrite=overwrite,
        progress=progress,
        cancel=cancel,
        **budget,
    )


def evaluate(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Scores of a segmentation, or of a membrane map, against ground truth.

    Instance labels (integers) give the SNEMI3D adapted Rand error and VOI split/merge; a float
    map in [0, 1] (1 = membrane) is also scored with ISBI 2012 V_rand/V_info (best threshold),
    and its adapted Rand error and VOI are those of its 2D watershed segmentation.
    """
    from napari_emseg import metrics
    from napari_emseg.segmentation.watershed import watershed_stack

    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} and ground truth shape {gt.shape} differ")
    if gt.dtype.kind not in "biu":
        raise ValueError(f"ground truth must be integer labels, got {gt.dtype}")
    scores: dict[str, float] = {}
    if pred.dtype.kind == "f":
        scores.update(metrics.isbi2012_scores(pred, gt))
        pred = watershed_stack(pred if pred.ndim == 3 else pred[None]).reshape(gt.shape)
    values = np.unique(gt)
    is_boundary_map = values.size == 2 and values[0] == 0  # e.g. ISBI's 0 / 255 labels
    instance_gt = _components(gt) if is_boundary_map else gt
    split, merge = metrics.variation_of_information(pred, instance_gt)
    scores["are"] = metrics.adapted_rand_error(pred, instance_gt)
    scores["voi_split"], scores["voi_merge"] = split, merge
    return scores


def _components(binary_gt: np.ndarray) -> np.ndarray:
    """Per-slice 2D objects of a binary boundary map (lower value = membrane)."""
    from scipy import ndimage as ndi

    foreground = binary_gt > binary_gt.min()
    stack = foreground if foreground.ndim == 3 else foreground[None]
    out = np.zeros(stack.shape, np.uint32)
    offset = 0
    for z, plane in enumerate(stack):
        labels, n = ndi.label(plane)
        out[z] = np.where(labels > 0, labels + offset, 0)
        offset += n
    return out.reshape(binary_gt.shape)
