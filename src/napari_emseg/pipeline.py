"""The one facade of the engine: the CLI, the widgets and Python users call only this.

It owns the defaults (membrane model, propagation method, reference slice, voxel size), resolves
the device once per call and calibrates every data-dependent choice on the slices the user
corrected, so every entry point behaves the same. Images may be plain arrays or
:class:`~napari_emseg.io.Volume` objects, whose voxel size then travels with them. A voxel size
that neither the caller nor the file gives is estimated from the image and said once
(:class:`VoxelSizeWarning`, and the result's ``notes``). Progress is a plain callback
``progress(done, total, message)``; ``cancel`` a plain callable.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_emseg._progress import (
    CancelCheck,
    Cancelled,
    ProgressCallback,
    check_cancel,
    stage_progress,
)
from napari_emseg._timing import timed
from napari_emseg.inference.devices import DEVICE_CHOICES
from napari_emseg.segmentation.normalization import check_has_content
from napari_emseg.voxel_size import VoxelSize, VoxelSizeWarning, checked_voxel_size

if TYPE_CHECKING:
    from pathlib import Path

    from napari_emseg.calibration import Calibration
    from napari_emseg.io import Volume

NO_PROPAGATION = "none"
# How segment makes its first labels: "agglomeration" of the membrane map in 3D (near-isotropic
# voxels, e.g. FIB-SEM), or a 2D "watershed" of one slice propagated through z (thick
# sections); "auto" picks by the voxel size, or by the map's own anisotropy.
STARTS = ("auto", "agglomeration", "watershed")
# Options every propagation method takes (see napari_emseg.propagation.propagate).
COMMON_OPTIONS = ("pixel_nm", "newcomers", "consistency", "vote_threshold")
__all__ = [
    "DEVICE_CHOICES",
    "Adaptation",
    "Cancelled",
    "Propagation",
    "Segmentation",
    "VoxelSizeWarning",
    "adapt",
    "calibrate",
    "checked_voxel_size",
    "default_method",
    "estimate_voxel_size",
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


@dataclass
class Segmentation:
    """Result of :func:`segment`.

    Attributes
    ----------
    membrane : ndarray of float32
        Membrane probability (1 = membrane).
    labels : ndarray of uint32
        Instance labels, ids consistent through z.
    ref_slice : int or None
        The slice a propagation started from (None: every slice on its own).
    voxel_size : (z, y, x) in nm, or None
        The size used: given, read from the file, or estimated (``voxel_estimated``).
    method : str
        How the labels were made (``"agglomeration"``, a propagation method, or ``"none"``).
    notes : list of str
        One-line messages for the user (what was estimated or chosen).
    voxel_estimated : bool
        Whether ``voxel_size`` was estimated from the image (neither given nor in the file).
    """

    membrane: np.ndarray
    labels: np.ndarray
    ref_slice: int | None
    voxel_size: VoxelSize | None = None
    method: str = ""
    notes: list[str] = field(default_factory=list)
    voxel_estimated: bool = False


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
    method : str
        The propagation method that ran.
    voxel_size : (z, y, x) in nm, or None
        The size used: given, read from the file, or estimated (``voxel_estimated``).
    calibration : Calibration or None
        What was chosen on the corrected slices and on what scores (``calibration.summary()``
        is one line), or None when calibration was off.
    notes : list of str
        One-line messages for the user (what was estimated, chosen or skipped).
    voxel_estimated : bool
        Whether ``voxel_size`` was estimated from the image (neither given nor in the file).
    """

    labels: np.ndarray
    sparse: bool = False
    method: str = ""
    voxel_size: VoxelSize | None = None
    calibration: Calibration | None = None
    notes: list[str] = field(default_factory=list)
    voxel_estimated: bool = False

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.labels, dtype=dtype)


# -- defaults and choices -------------------------------------------------------------------------
def list_models() -> list[str]:
    """Registered membrane models, the default first.

    Returns
    -------
    list of str
        Names to pass as ``model=``; the first is the default network.

    Examples
    --------
    >>> list_models()[0]
    'fusionnet-w0.375-native'
    """
    from napari_emseg.models.cards import list_models as registered

    return registered()


def list_methods() -> list[str]:
    """Registered propagation methods, the default (from a corrected reference) first.

    Returns
    -------
    list of str
        Names to pass as ``method=``; the first is the default from a corrected reference.

    Examples
    --------
    >>> sorted(list_methods())
    ['agglomeration', 'cconvlstm', 'watershed']
    """
    from napari_emseg.propagation import list_methods as registered

    return registered()


def default_method(
    *,
    voxel_size: VoxelSize | None = None,
    membrane: np.ndarray | None = None,
    interactive: bool = False,
) -> str:
    """The propagation method used when none is given, by the data.

    Near-isotropic voxels (FIB-SEM; by ``voxel_size``, else the ``membrane`` map's own
    anisotropy): ``agglomeration``, the 3D agglomeration named by the reference, which beat the
    consistent ConvLSTM from the same corrected slice on training and held-out FIB-SEM
    (docs/results/calibration.md). Thick sections: the consistent ConvLSTM with the supervoxel
    vote (docs/results/supervoxel-vote.md); ``interactive`` (the Proofread widget's targeted
    repropagation, where a person waits for every call) takes the classical propagator there,
    20-60x faster on a CPU.

    Parameters
    ----------
    voxel_size : (z, y, x) in nm, optional
    membrane : ndarray, optional
        The map, whose anisotropy decides when the voxel size is unknown.
    interactive : bool
        For targeted repropagation while proofreading.

    Returns
    -------
    str
        A name of :func:`list_methods`.

    Examples
    --------
    >>> default_method(voxel_size=(10, 10, 10)), default_method(voxel_size=(50, 4, 4))
    ('agglomeration', 'cconvlstm')
    """
    from napari_emseg.propagation.api import AUTOMATIC_METHOD, DEFAULT_METHOD
    from napari_emseg.segmentation.supervoxels import is_anisotropic

    known = voxel_size is not None or (membrane is not None and membrane.shape[0] > 1)
    if known and not is_anisotropic(voxel_size, membrane):
        return "agglomeration"
    return DEFAULT_METHOD if interactive else AUTOMATIC_METHOD


# The membrane map's share of a run's time, by the stage that follows it, measured on a 2-core
# CPU (docs/performance.md, "stage split"): 0.37-0.56 before the learned propagator (10 and 4 nm
# pixels; both directions at once; 0.34-0.49 before the last outline speed-up), 0.40 before the
# classical one, 0.83 before the agglomeration (the three-plane map of FIB-SEM; 0.75 with two
# rotations of the sections, 0.62 with one), 0.67 alone. Progress bars weight their stages by
# it, so a time estimate drawn from them stays within 2x of the truth (1.6x at worst here).
MEMBRANE_SHARE = {"cconvlstm": 0.35, "watershed": 0.4, "agglomeration": 0.8, NO_PROPAGATION: 0.7}
# How the membrane map of a stack is made (docs/results/membrane-planes.md). Isotropic voxels
# (FIB-SEM; sections at most PLANES_LIMIT times the pixel) average the maps of the sections and of
# the xz and yz planes: on gala train slices 40-49, which trained no network, `propagate` from four
# reference slices scored 0.0245 with two rotations of the sections, 0.0155 with the three planes
# (held out, gala test from five slices: 0.073 -> 0.027). Sections up to ANISOTROPY_LIMIT times
# thicker than the pixels average two rotations of the sections (0.027 -> 0.025 against one); thick
# sections keep one view (their 4 nm stacks' membrane stage alone takes half of a 30 s budget).
PLANES_LIMIT = 1.5
ISOTROPIC_MEMBRANE_VIEWS = 2


def membrane_views(
    voxel_size: VoxelSize | None, shape: tuple = (), model: str | None = None
) -> dict[str, int]:
    """How the membrane map of a stack of this voxel size and ``shape`` (Z, Y, X) is made by
    ``model`` (default: the network the pixel size picks): ``views`` (rotations of the
    sections) and ``planes`` (1: the sections; 3: also the xz and yz planes), as
    :func:`~napari_emseg.inference.membrane.predict_membrane` takes them. Isotropic stacks
    thinner than ``MIN_PLANE_DEPTH`` slices get two rotations instead of the planes (10 slices
    of gala train alone: ARE 0.030 with the planes, 0.025 with rotations), and so does the
    classical model (its per-slice rescaling would make a plane's map depend on the crop; the
    planes were chosen for the network).

    Examples
    --------
    >>> membrane_views((10, 10, 10)), membrane_views((20, 10, 10))
    ({'views': 1, 'planes': 3}, {'views': 2, 'planes': 1})
    >>> membrane_views((50, 4, 4)), membrane_views(None), membrane_views((10, 10, 10), (8, 9, 9))
    ({'views': 1, 'planes': 1}, {'views': 1, 'planes': 1}, {'views': 2, 'planes': 1})
    """
    from napari_emseg.segmentation.supervoxels import is_anisotropic

    if voxel_size is None or is_anisotropic(voxel_size):
        return {"views": 1, "planes": 1}
    from napari_emseg.inference.membrane import MIN_PLANE_DEPTH
    from napari_emseg.models.cards import get_card

    thick_enough = len(shape) != 2 and (not shape or shape[0] >= MIN_PLANE_DEPTH)
    network = model is None or get_card(model).needs_torch
    isotropic = voxel_size[0] <= PLANES_LIMIT * min(voxel_size[1], voxel_size[2])
    if thick_enough and network and isotropic:
        return {"views": 1, "planes": 3}
    return {"views": ISOTROPIC_MEMBRANE_VIEWS, "planes": 1}


def start_threshold(
    voxel_size: VoxelSize | None, shape: tuple = (), model: str | None = None
) -> float:
    """The 3D agglomeration's threshold (the automatic start's, and the default a calibration
    keeps) for the map :func:`membrane_views` makes of such a stack with ``model``.

    Examples
    --------
    >>> start_threshold((10, 10, 10), (60, 250, 250)), start_threshold((10, 10, 10), (8, 64, 64))
    (0.65, 0.8)
    """
    from napari_emseg.propagation.agglomeration import threshold_for_planes

    return threshold_for_planes(membrane_views(voxel_size, shape, model)["planes"])


# A map the caller gave costs nothing; only the calibration may predict a few slices again.
GIVEN_MEMBRANE_SHARE = 0.05


def membrane_share(method: str | None, voxel_size: Any = None, *, given: bool = False) -> float:
    """The progress share of the membrane stage before ``method`` (None: the data's default
    for ``voxel_size``, a guess while the map that may decide it is not yet there).

    Examples
    --------
    >>> membrane_share("cconvlstm"), membrane_share(None, (10, 10, 10))
    (0.35, 0.8)
    >>> membrane_share("watershed", given=True)
    0.05
    """
    if given:
        return GIVEN_MEMBRANE_SHARE
    return MEMBRANE_SHARE.get(method or default_method(voxel_size=voxel_size), 0.3)


def check_model(model: str | None) -> str:
    """The name of a registered membrane model or the path of a model card; a one-line
    ``ValueError`` for anything else."""
    from napari_emseg.models.cards import get_card

    return get_card(model).name


def resolve_device(device: str | None = "auto") -> str:
    """The device a network will run on (``"cpu"``, ``"cuda:0"``, ...), checked once.

    On the CPU, torch then gets as many threads as there are idle cores
    (:mod:`napari_emseg.inference.cpu_threads`): each job of the facade calls this first.
    Raises ``ValueError`` with a one-line message when the device is unknown or absent.

    Parameters
    ----------
    device : str or None
        ``"auto"`` (CUDA, then MPS, then the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.

    Returns
    -------
    str
        The torch device name; ``None`` counts as ``"auto"``.

    Raises
    ------
    ValueError
        One line, for an unknown device name or one this machine lacks.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    from napari_emseg.inference.devices import resolve_device as to_torch

    resolved = str(to_torch(device or "auto"))
    if resolved == "cpu":
        from napari_emseg.inference.cpu_threads import fit_torch_threads

        fit_torch_threads()
    return resolved


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

    Parameters
    ----------
    spec : str
        A file, a folder of slices, ``file.h5:/dataset`` or a Zarr store.
    voxel_size : (z, y, x) in nm, optional
        Overrides what the file records (checked for plausibility).
    as_labels : bool, optional
        Read as labels (integers); default: guessed from the data.
    lazy : bool
        Leave the data on disk (a dask array) where the format allows.

    Returns
    -------
    Volume
        ``.data``, ``.scale`` (nm when ``.unit == "nm"``), ``.unit``.

    Raises
    ------
    ValueError
        One line: an implausible ``voxel_size`` (:func:`checked_voxel_size`), or an
        :class:`~napari_emseg.io.InputError` for a path that is missing, unsupported or
        unreadable.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from napari_emseg.io import write_image_tiff
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = str(Path(folder) / "stack.tif")
    ...     _ = write_image_tiff(path, np.zeros((2, 8, 8), np.uint8))
    ...     volume = read_volume(path, voxel_size=(50, 4, 4))
    >>> volume.data.shape, volume.scale, volume.unit
    ((2, 8, 8), (50.0, 4.0, 4.0), 'nm')
    >>> read_volume("missing.tif")  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    InputError: missing.tif does not exist
    """
    from napari_emseg.io import read_volume as read

    volume = read(spec, as_labels=as_labels, lazy=lazy)
    if voxel_size is not None:
        volume = replace(volume, scale=checked_voxel_size(voxel_size), unit="nm")
    return volume


def _unpack(image: Any, voxel_size: VoxelSize | None) -> tuple[np.ndarray, VoxelSize | None]:
    """The array of an image or Volume, and its voxel size in nm (``voxel_size`` wins)."""
    from napari_emseg.io import Volume

    if isinstance(image, Volume):
        if voxel_size is None and image.unit == "nm":
            voxel_size = image.scale
        image = image.data
    size = None if voxel_size is None else checked_voxel_size(voxel_size)
    return np.asarray(image), size


def estimate_voxel_size(
    image: Any,
    *,
    model: str | None = None,
    device: str = "auto",
    membrane: np.ndarray | None = None,
) -> tuple[VoxelSize, str]:
    """The voxel size (z, y, x) in nm of a stack whose file gives none, and how it was found.

    The pixel size comes from the size of the cells on the membrane map
    (:func:`napari_emseg.inference.pixel_size.estimate_pixel_size`); the section thickness from
    how much the map changes from slice to slice against an in-plane shift
    (:func:`~napari_emseg.segmentation.supervoxels.membrane_anisotropy`, with ``membrane``
    when given). A ``ValueError`` (:class:`~napari_emseg.inference.pixel_size.PixelSizeError`)
    when the image shows no cells: then only the user can say.

    Parameters
    ----------
    image : ndarray, lazy array or Volume, shape (Z, Y, X) or (Y, X)
        Only a few planes are read.
    model, device : str, optional
        The network that finds the membranes (default: the default model).
    membrane : ndarray, optional
        The map of the stack, for the section thickness.

    Returns
    -------
    ((z, y, x), str)
        The size in nm and one line saying how it was found. A single plane gives the pixel
        size on every axis.

    Raises
    ------
    ValueError
        One line, for a blank image or one that shows no cells
        (:class:`~napari_emseg.inference.pixel_size.PixelSizeError`).

    Examples
    --------
    >>> estimate_voxel_size(np.zeros((2, 32, 32), np.uint8))
    Traceback (most recent call last):
    ...
    ValueError: the image is constant (every voxel is 0): nothing to segment
    >>> from napari_emseg.datasets.synthetic import make_synthetic_stack_at
    >>> stack = make_synthetic_stack_at((4, 256, 256), 8.0)
    >>> (z, y, x), how = estimate_voxel_size(stack.image)  # doctest: +SKIP
    >>> 6.0 <= y <= 10.0  # doctest: +SKIP
    True
    """
    from napari_emseg.inference.pixel_size import estimate_pixel_size
    from napari_emseg.io import Volume
    from napari_emseg.segmentation.supervoxels import membrane_anisotropy

    array = image.data if isinstance(image, Volume) else image
    if not hasattr(array, "shape"):
        array = np.asarray(array)
    stack = array[None] if len(array.shape) == 2 else array  # lazy arrays stay lazy
    found = estimate_pixel_size(stack, model=model, device=device)
    pixel = found.pixel_nm
    if stack.shape[0] < 2:
        return (pixel, pixel, pixel), f"pixel size {pixel:g} nm {found.how}"
    if membrane is None:
        from napari_emseg.inference.membrane import predict_membrane as predict

        middle = stack.shape[0] // 2
        window = np.asarray(stack[max(0, middle - 4) : middle + 4])
        membrane = predict(window, model=model, device=device, pixel_nm=pixel)
    ratio = max(1.0, float(membrane_anisotropy(membrane)))
    how = (
        f"pixel size {pixel:g} nm {found.how}; sections about {ratio:.1f}x the pixel "
        "(from how the membrane map changes between slices)"
    )
    return (round(pixel * ratio, 1), pixel, pixel), how


def _voxel_or_estimate(
    array: np.ndarray, voxel: VoxelSize | None, *, model: str | None, device: str, notes: list
) -> tuple[VoxelSize, bool]:
    """The given size, or an estimate said once (warning and note); True when estimated."""
    if voxel is not None:
        return voxel, False
    voxel, how = estimate_voxel_size(array, model=model, device=device)
    shown = " ".join(f"{v:g}" for v in voxel)
    message = (
        f"voxel size unknown: estimated {shown} nm (z y x), {how}; give the voxel size "
        "(--voxel-size Z Y X) if you know it"
    )
    warnings.warn(message, VoxelSizeWarning, stacklevel=3)
    notes.append(message)
    return voxel, True


def _coarse_pixel_note(voxel: VoxelSize, model: str | None, notes: list) -> None:
    """Warn once when pixels are much coarser than the membrane model knows."""
    from napari_emseg.models.cards import default_model, get_card

    card = get_card(model or default_model(voxel[-1]))
    high = (card.pixel_range_nm or (card.pixel_nm, card.pixel_nm))[1] if card.pixel_nm else None
    if high and voxel[-1] > 1.5 * high:
        message = (
            f"pixels of {voxel[-1]:g} nm are much coarser than the membrane model's "
            f"{high:g} nm: thin membranes may be missed (the stack is enlarged at most 1.25x)"
        )
        warnings.warn(message, VoxelSizeWarning, stacklevel=3)
        notes.append(message)


def options_for(
    method: str,
    voxel_size: VoxelSize | None,
    options: dict | None = None,
    shape: tuple = (),
    model: str | None = None,
) -> dict:
    """The options a propagation method runs with: the pixel size its nm sizes are converted
    with, the agglomeration's threshold for the map ``model`` makes of a stack of ``shape``
    (:func:`start_threshold`), then the caller's ``options`` (only those the method takes).

    Examples
    --------
    >>> options_for("watershed", (10.0, 10.0, 10.0))
    {'pixel_nm': 10.0}
    >>> options_for("agglomeration", (10.0, 10.0, 10.0), shape=(60, 250, 250))
    {'pixel_nm': 10.0, 'threshold': 0.65}
    >>> options_for("cconvlstm", (50.0, 4.0, 4.0), {"variant": "st"})
    {'pixel_nm': 4.0, 'variant': 'st'}
    """
    from napari_emseg.propagation import get_propagator

    record = get_propagator(method)
    given = dict(options or {})
    unknown = sorted(k for k in given if k not in (*record.options, *COMMON_OPTIONS))
    if unknown:
        raise ValueError(
            f"the {method} method takes no option {', '.join(unknown)}"
            + (f"; it takes {', '.join(record.options)}" if record.options else "")
        )
    base: dict[str, Any] = {} if voxel_size is None else {"pixel_nm": float(voxel_size[-1])}
    if method == "agglomeration":
        base["threshold"] = start_threshold(voxel_size, shape, model)
    return {**base, **given}


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

    The network sees the stack at its own resolution when its card covers the pixel size, else
    at the nearest size it covers (:func:`~napari_emseg.inference.resampling.work_pixel_nm`);
    without a voxel size the pixel size is estimated first (one :class:`VoxelSizeWarning`).

    Parameters
    ----------
    image : ndarray or Volume, shape (Z, Y, X) or (Y, X)
    model, device : str, optional
        Membrane model (:func:`list_models`; default by the pixel size) and where it runs.
    voxel_size : (z, y, x) in nm, optional
        Default: the file's, else estimated.
    value_range : (float, float), optional
        Intensities mapped to 0 and 1 (default: the stack's 0.5 and 99.5 percentiles).
    progress, cancel : callable, optional

    Returns
    -------
    ndarray of float32
        The map, shaped like ``image``.

    Raises
    ------
    ValueError
        One line, for a constant or all-NaN image when ``value_range`` is not given.

    Examples
    --------
    >>> stack = np.full((1, 32, 32), 200, np.uint8); stack[:, 16] = 40
    >>> prob = predict_membrane(stack, model="ridge")
    >>> prob.shape, bool(prob[0, 16, 8] > 0.5)
    ((1, 32, 32), True)
    """
    from napari_emseg.inference.membrane import predict_membrane as predict
    from napari_emseg.models.cards import get_card

    array, voxel = _unpack(image, voxel_size)
    if value_range is None:  # a block of a larger volume may be blank; a whole volume not
        check_has_content(array)
    if get_card(model).needs_torch:
        device = resolve_device(device)
    if voxel is None and get_card(model).needs_torch and value_range is None:
        voxel, _ = _voxel_or_estimate(array, voxel, model=model, device=device, notes=[])
    return predict(
        array,
        model=model,
        device=device,
        value_range=value_range,
        pixel_nm=None if voxel is None else voxel[-1],
        **membrane_views(voxel, np.shape(array), model),
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
    method_options: dict | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Segmentation:
    """Membrane map and 3D instance labels of an EM stack, with no correction yet.

    Parameters
    ----------
    image : ndarray or Volume, shape (Z, Y, X) or (Y, X)
        The EM stack (a 2D image is a one-slice stack).
    model, device : str, optional
        Membrane model (:func:`list_models`) and where networks run.
    voxel_size : (z, y, x) in nm, optional
        Default: the file's, else estimated (one :class:`VoxelSizeWarning`).
    ref_slice : int, optional
        Where a propagation starts (default: the middle slice).
    propagation : str, optional
        A propagation method, ``"none"`` (every slice on its own), or the default for the data.
    start : {"auto", "agglomeration", "watershed"}
        ``agglomeration``: the membrane map agglomerated in 3D by the start rule
        (docs/results/start-rule.md); ``watershed``: a 2D watershed of ``ref_slice``
        propagated through z; ``auto``: agglomeration for near-isotropic voxels, else watershed
        (a ``propagation`` given means a watershed start).
    value_range : (float, float), optional
        Intensities mapped to 0 and 1 (default: the stack's 0.5 and 99.5 percentiles;
        :mod:`napari_emseg.blockwise` passes the whole volume's).
    method_options : dict, optional
        Options of the propagation method (e.g. ``{"variant": "st"}``).
    progress, cancel : callable, optional

    Returns
    -------
    Segmentation

    Examples
    --------
    >>> from napari_emseg.datasets.synthetic import make_synthetic_stack
    >>> stack = make_synthetic_stack((4, 96, 96))
    >>> result = segment(stack.image, model="ridge", propagation="watershed",
    ...                  voxel_size=stack.scale)
    >>> result.labels.shape, result.labels.dtype, result.method
    ((4, 96, 96), dtype('uint32'), 'watershed')
    """
    from napari_emseg.inference.membrane import predict_membrane as predict
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
    notes: list[str] = []
    estimated = False
    if voxel is None and value_range is None:
        voxel, estimated = _voxel_or_estimate(array, voxel, model=model, device=device, notes=notes)
    if voxel is not None:
        _coarse_pixel_note(voxel, model, notes)
    method = propagation or default_method(voxel_size=voxel)
    device = resolve_device(device) if _needs_network(model, method) else "cpu"
    pixel = None if voxel is None else voxel[-1]
    share = membrane_share("agglomeration" if start == "agglomeration" else method)
    with timed("membrane"):
        membrane = predict(
            array,
            model=model,
            device=device,
            value_range=value_range,
            pixel_nm=pixel,
            **membrane_views(voxel, np.shape(array), model),
            progress=stage_progress(progress, 0.0, share, "membrane"),
            cancel=cancel,
        )
    done = {
        "membrane": membrane,
        "ref_slice": ref,
        "voxel_size": voxel,
        "notes": notes,
        "voxel_estimated": estimated,
    }
    if method == NO_PROPAGATION:
        labels = watershed_stack(
            membrane,
            pixel_nm=pixel,
            progress=stage_progress(progress, share, 1.0, "watershed"),
            cancel=cancel,
        )
        return Segmentation(labels=labels, method=NO_PROPAGATION, **{**done, "ref_slice": None})
    # Under "auto", a propagator the caller chose means a start from one slice.
    chosen = "watershed" if start == "auto" and propagation is not None else start
    if _starts_with_agglomeration(chosen, voxel, membrane):
        from napari_emseg.propagation.agglomeration import agglomerate

        with timed("agglomeration"):
            labels = agglomerate(
                membrane,
                voxel_size=voxel,
                threshold=start_threshold(voxel, array.shape, model),
                progress=stage_progress(progress, share, 1.0, "agglomeration"),
                cancel=cancel,
            )
        return Segmentation(labels=labels, method="agglomeration", **done)
    if method == "agglomeration":  # a watershed start was asked for: propagate it through z
        method = default_method(voxel_size=(ANISOTROPIC_Z, 1.0, 1.0))
    options = options_for(method, voxel, method_options, array.shape, model)
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
        progress=stage_progress(progress, share, 1.0, "propagation"),
        cancel=cancel,
        voxel_size=voxel,
        **options,
    )
    return Segmentation(labels=labels, method=method, **done)


# A section thickness, in pixels, that every rule takes for thick sections.
ANISOTROPIC_Z = 10.0


def _starts_with_agglomeration(start: str, voxel: VoxelSize | None, membrane: np.ndarray) -> bool:
    from napari_emseg.segmentation.supervoxels import is_anisotropic

    if start != "auto":
        return start == "agglomeration"
    return membrane.shape[0] > 1 and not is_anisotropic(voxel, membrane)


def _needs_network(model: str | None, method: str | None) -> bool:
    from napari_emseg.models.cards import get_card
    from napari_emseg.propagation import PROPAGATORS

    record = PROPAGATORS.get(method or "")
    return get_card(model).needs_torch or bool(record and record.needs_network)


def _device_for(model: str | None, method: str, membrane: Any, device: str) -> str:
    needs = _needs_network(None, method) or (membrane is None and _needs_network(model, None))
    return resolve_device(device) if needs else "cpu"


def _prepare(
    image: Any,
    labels: np.ndarray,
    voxel_size: VoxelSize | None,
    membrane: np.ndarray | None,
    *,
    model: str | None,
    device: str,
    references: list[int],
    calibrate: bool,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> tuple[np.ndarray, np.ndarray, VoxelSize, np.ndarray, list[str], Any, bool]:
    """Array, labels, voxel size (given or estimated), membrane map and notes of a
    propagation, the pixel size chosen on the corrected slices (a ``Choice``) when the
    size was estimated and ``calibrate`` is on (else None), and whether it was estimated."""
    from napari_emseg.inference.membrane import predict_membrane as predict

    array, voxel = _unpack(image, voxel_size)
    labels = np.asarray(labels)
    if array.shape != labels.shape:
        raise ValueError(f"image shape {array.shape} and labels shape {labels.shape} differ")
    notes: list[str] = []
    voxel, estimated = _voxel_or_estimate(array, voxel, model=model, device=device, notes=notes)
    if estimated and model is None:
        from napari_emseg.models.cards import default_model

        # The estimate's model, whatever size the slice picks next: the search then compares
        # sizes, not two networks' maps on a 2D proxy (which preferred the 3D-worse one on ISBI).
        model = default_model(voxel[-1])
    scale = None
    if estimated and calibrate and membrane is None:
        voxel, scale = _calibrated_voxel(array, labels, references, voxel, model, device, cancel)
    _coarse_pixel_note(voxel, model, notes)
    if membrane is None:
        with timed("membrane"):
            membrane = predict(
                array,
                model=model,
                device=_device_for(model, "watershed", None, device),
                pixel_nm=voxel[-1],
                **membrane_views(voxel, np.shape(array), model),
                progress=progress,
                cancel=cancel,
            )
    elif np.shape(membrane) != labels.shape:
        shape = np.shape(membrane)
        raise ValueError(f"membrane shape {shape} and labels shape {labels.shape} differ")
    return array, labels, voxel, np.asarray(membrane), notes, scale, estimated


def _calibrated_voxel(array, labels, references, voxel, model, device, cancel) -> tuple:
    """The estimated voxel size rescaled to the pixel size that segments the corrected slices
    best (:func:`napari_emseg.calibration.scale.choose_pixel_size`), and that choice; the
    estimate and None when no slice is corrected densely enough to score on."""
    from napari_emseg.calibration.scale import choose_pixel_size
    from napari_emseg.calibration.scoring import usable_slices
    from napari_emseg.inference.membrane import predict_membrane as predict

    usable, _ = usable_slices(labels, references)
    if not usable:
        return voxel, None
    run_on = _device_for(model, "watershed", None, device)

    def membrane_at(stack: np.ndarray, pixel: float) -> np.ndarray:
        check_cancel(cancel)
        return predict(stack, model=model, device=run_on, pixel_nm=pixel)

    with timed("calibration"):
        choice = choose_pixel_size(array, labels, usable, estimate=voxel[-1], predict=membrane_at)
    factor = choice.value / voxel[-1]
    return tuple(round(v * factor, 2) for v in voxel), choice


def _calibrated_options(
    calibration: Calibration | None, method: str, z_range: tuple[int, int] | None, depth: int
) -> dict:
    """The options a calibration chose for ``method`` (threshold, the cached agglomeration)."""
    if calibration is None:
        return {}
    options: dict[str, Any] = {}
    if method == "agglomeration" and "threshold" in calibration.choices:
        options["threshold"] = calibration.value("threshold")
        whole = z_range is None or tuple(z_range) == (0, depth - 1)
        if whole and calibration.hierarchy is not None:
            options["hierarchy"] = calibration.hierarchy
    return options


def _add_scale(calibration: Calibration, scale: Any) -> None:
    """Report the pixel size chosen before the membrane map first among the choices."""
    if scale is not None:
        calibration.choices = {"pixel_nm": scale, **calibration.choices}


def _run_calibration(
    array, labels, slices, membrane, voxel, method, *, method_given, model, device, cancel
) -> Calibration:
    from napari_emseg.calibration import calibrate
    from napari_emseg.propagation import propagate as run_propagation
    from napari_emseg.segmentation.supervoxels import is_anisotropic

    candidates = ["watershed", "cconvlstm"]
    if not is_anisotropic(voxel, membrane):
        candidates.insert(0, "agglomeration")

    def run(image, only, ref, *, membrane, method, z_range):
        chosen = options_for(method, voxel, shape=np.shape(image), model=model)
        return run_propagation(
            image, only, ref, membrane=membrane, method=method, z_range=z_range,
            device=_device_for(None, method, membrane, device), voxel_size=voxel, **chosen,
        )  # fmt: skip

    with timed("calibration"):
        return calibrate(
            array, labels, slices, membrane=membrane, voxel_size=voxel, method=method,
            methods=None if method_given else candidates, run=run, cancel=cancel,
            default_threshold=start_threshold(voxel, array.shape, model),
        )  # fmt: skip


def calibrate(
    image: Any,
    labels: np.ndarray,
    slices: Iterable[int],
    *,
    membrane: np.ndarray | None = None,
    method: str | None = None,
    model: str | None = None,
    device: str = "auto",
    voxel_size: VoxelSize | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Calibration:
    """Score the data-dependent choices on the corrected ``slices`` of ``labels``, as
    :func:`propagate` and :func:`repropagate` do before they run (docs/calibration.md).

    Parameters
    ----------
    image : ndarray or Volume, shape (Z, Y, X)
    labels : ndarray of int, shape (Z, Y, X)
        Labels whose ``slices`` the user corrected densely.
    slices : iterable of int
    membrane : ndarray, optional
        The membrane map (predicted when omitted; then an estimated pixel size is checked on
        the slices too).
    method : str, optional
        The method the thresholds are for; default :func:`default_method`. Not given, two or
        more slices also choose the method (leave one out).
    model, device, voxel_size, progress, cancel
        As for :func:`propagate`.

    Returns
    -------
    Calibration
        Each choice with its score and the default's (``summary()`` is one line), or why
        nothing was calibrated.

    Examples
    --------
    >>> image = np.full((3, 64, 64), 200, np.uint8); image[:, ::8], image[:, :, ::8] = 30, 30
    >>> labels = np.zeros((3, 64, 64), np.uint32)
    >>> labels[1] = np.arange(64)[:, None] // 8 * 8 + np.arange(64) // 8 + 1
    >>> result = calibrate(image, labels, [1], model="ridge", voxel_size=(50, 4, 4))
    >>> list(result.choices)
    ['vote_threshold']
    """
    slices = [int(z) for z in slices]
    _check_reference(np.asarray(labels), slices)
    array, labels, voxel, membrane, _, scale, _ = _prepare(
        image, labels, voxel_size, membrane, model=model, device=device, references=slices,
        calibrate=True, progress=stage_progress(progress, 0.0, 0.6, "membrane"), cancel=cancel,
    )  # fmt: skip
    chosen = method or default_method(voxel_size=voxel, membrane=membrane)
    result = _run_calibration(
        array, labels, slices, membrane, voxel, chosen, method_given=method is not None,
        model=model, device=device, cancel=cancel,
    )  # fmt: skip
    _add_scale(result, scale)
    return result


@dataclass
class _Run:
    """What a propagation runs with: the prepared stack, the method and options chosen (by the
    caller, the data or the calibration), and what the result reports."""

    array: np.ndarray
    labels: np.ndarray
    voxel: VoxelSize
    membrane: np.ndarray
    notes: list[str]
    estimated: bool
    method: str
    options: dict
    calibration: Calibration | None
    share: float  # the membrane stage's part of the progress bar


def _prepare_run(
    image, labels, references, *, voxel_size, membrane, method, method_options, model, device,
    sparse, calibrate, z_range, interactive, progress, cancel,
) -> _Run:  # fmt: skip
    """What ``propagate`` and ``repropagate`` share: the voxel size, the membrane map, the
    method (the caller's, else the data's, else the calibration's with two or more slices), its
    options, and the calibration on the corrected ``references``."""
    share = membrane_share(method, voxel_size, given=membrane is not None)
    array, labels, voxel, membrane, notes, scale, estimated = _prepare(
        image, labels, voxel_size, membrane, model=model, device=device,
        references=references, calibrate=calibrate and not sparse,
        progress=stage_progress(progress, 0.0, share, "membrane"), cancel=cancel,
    )  # fmt: skip
    chosen = method or default_method(voxel_size=voxel, membrane=membrane, interactive=interactive)
    options = options_for(chosen, voxel, method_options, array.shape, model)
    calibration = None
    if calibrate:
        calibration = _run_calibration(
            array, labels, references, membrane, voxel, chosen, method_given=method is not None,
            model=model, device=device, cancel=cancel,
        )  # fmt: skip
        _add_scale(calibration, scale)
        notes.append(calibration.summary())
        if calibration.value("method", chosen) != chosen:
            chosen = calibration.value("method")
            options = options_for(chosen, voxel, method_options, array.shape, model)
        options.update(_calibrated_options(calibration, chosen, z_range, labels.shape[0]))
    return _Run(
        array, labels, voxel, membrane, notes, estimated, chosen, options, calibration, share
    )


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
    method_options: dict | None = None,
    z_range: tuple[int, int] | None = None,
    objects: Iterable[int] | None = None,
    sparse: bool | None = None,
    calibrate: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Propagation:
    """Propagate the objects of the corrected ``labels[ref_slice]`` up and down through z.

    Parameters
    ----------
    image : ndarray or Volume, shape (Z, Y, X)
    labels : ndarray of int, shape (Z, Y, X)
        Current labels; slice ``ref_slice`` is the corrected reference.
    ref_slice : int
    membrane : ndarray, optional
        The membrane map (predicted with ``model`` when omitted).
    method : str, optional
        A propagation method (:func:`list_methods`); default :func:`default_method` for the
        data. With calibration, two or more corrected slices choose among them
        (:func:`repropagate`).
    model, device : str, optional
    voxel_size : (z, y, x) in nm, optional
        Default: the file's, else estimated (one :class:`VoxelSizeWarning`).
    method_options : dict, optional
        Options of the method (e.g. ``{"variant": "st"}`` for ``cconvlstm``).
    z_range : (int, int), optional
        Inclusive limits of the slices to fill.
    objects : iterable of int, optional
        Propagate only these ids; all others keep their voxels.
    sparse : bool, optional
        Sparse tracing: carry exactly the reference's objects, grown from dots to their cells,
        and give unlabelled area no id (:mod:`napari_emseg.propagation.sparse`). Default: from
        the reference's coverage.
    calibrate : bool
        Choose the data-dependent settings on the corrected slice (:mod:`napari_emseg.calibration`;
        skipped, with the reason in ``notes``, for a sparse or nearly empty reference).
    progress, cancel : callable, optional

    Returns
    -------
    Propagation
        ``labels``, the mode, the method, the voxel size, the calibration and notes.

    Raises
    ------
    ValueError
        One line, for input no method can use; a reference slice with no object included.

    Examples
    --------
    >>> image = np.full((3, 40, 40), 200, np.uint8); image[:, :, 19:21] = 30
    >>> labels = np.zeros((3, 40, 40), np.uint32)
    >>> labels[1, :, :19], labels[1, :, 21:] = 1, 2
    >>> out = propagate(image, labels, 1, model="ridge", voxel_size=(50, 4, 4))
    >>> [sorted(np.unique(out.labels[z]).tolist()) for z in range(3)], out.sparse
    ([[1, 2], [0, 1, 2], [1, 2]], False)
    """
    from napari_emseg.propagation import propagate as run_propagation
    from napari_emseg.propagation.sparse import is_sparse

    labels = np.asarray(labels)
    _check_reference(labels, [ref_slice], objects)
    sparse = is_sparse(labels[int(ref_slice)]) if sparse is None else bool(sparse)
    run = _prepare_run(
        image, labels, [int(ref_slice)], voxel_size=voxel_size, membrane=membrane,
        method=method, method_options=method_options, model=model, device=device,
        sparse=sparse, calibrate=calibrate, z_range=z_range, interactive=False,
        progress=progress, cancel=cancel,
    )  # fmt: skip
    calibration = run.calibration
    out = run_propagation(
        run.array,
        run.labels,
        ref_slice,
        membrane=run.membrane,
        method=run.method,
        z_range=z_range,
        objects=objects,
        model=model,
        device=_device_for(model, run.method, run.membrane, device),
        progress=stage_progress(progress, run.share, 1.0, "propagation"),
        cancel=cancel,
        voxel_size=run.voxel,
        sparse=sparse,
        vote_threshold=None if calibration is None else calibration.value("vote_threshold"),
        **run.options,
    )
    return Propagation(out, sparse, run.method, run.voxel, calibration, run.notes, run.estimated)


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
    method_options: dict | None = None,
    sparse: bool | None = None,
    calibrate: bool = True,
    interactive: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Propagation:
    """Propagate again from corrected reference slices, keeping locked objects and hand-edited
    slices (:func:`napari_emseg.proofreading.repropagate`).

    Options as in :func:`propagate`; ``references`` are the corrected slices, ``locked`` ids
    never change, ``frozen_slices`` (edited by hand) are kept and act as references. With two
    or more corrected slices, calibration also chooses the method (leave one out), unless
    ``method`` is given. The default method is :func:`default_method` with ``interactive``
    (targeted repropagations while proofreading, where a person waits for each call; the
    Segment widget's whole propagation passes ``interactive=False`` and so runs what
    :func:`propagate` and the CLI run).

    Parameters
    ----------
    image, labels, membrane, method, model, device, voxel_size, method_options, sparse, calibrate
        As for :func:`propagate`.
    references : iterable of int
        The corrected slices.
    objects : iterable of int, optional
        Only these ids change (default: every object of the references).
    locked : iterable of int
        Ids that never change.
    frozen_slices : iterable of int
        Slices painted by hand: kept, and used as references.
    z_range : (int, int), optional
        Inclusive limits of the slices to fill.
    interactive : bool
        The default method for targeted repropagation (see above).
    progress, cancel : callable, optional

    Returns
    -------
    Propagation
        ``labels``, the mode, the method, the voxel size, the calibration and notes.

    Raises
    ------
    ValueError
        One line, as for :func:`propagate`; without ``objects``, references that hold no object.

    Examples
    --------
    >>> image = np.full((3, 40, 40), 200, np.uint8); image[:, :, 19:21] = 30
    >>> labels = np.zeros((3, 40, 40), np.uint32); labels[:, :, :19], labels[:, :, 21:] = 1, 2
    >>> out = repropagate(image, labels, references=[0], model="ridge", voxel_size=(50, 4, 4))
    >>> out.method, out.labels.shape
    ('watershed', (3, 40, 40))
    """
    from napari_emseg.proofreading import repropagate as run_repropagation

    labels = np.asarray(labels)
    references = [int(z) for z in references]
    if objects is None:
        _check_reference(labels, references)
    sparse = _sparse_references(labels, references) if sparse is None else bool(sparse)
    run = _prepare_run(
        image, labels, references, voxel_size=voxel_size, membrane=membrane, method=method,
        method_options=method_options, model=model, device=device, sparse=sparse,
        calibrate=calibrate, z_range=z_range, interactive=interactive, progress=progress,
        cancel=cancel,
    )  # fmt: skip
    options = dict(run.options)
    vote = None if run.calibration is None else run.calibration.value("vote_threshold")
    if vote is not None:
        options["vote_threshold"] = vote
    out = run_repropagation(
        run.array,
        run.labels,
        references=references,
        objects=objects,
        locked=locked,
        frozen_slices=frozen_slices,
        z_range=z_range,
        membrane=run.membrane,
        method=run.method,
        model=model,
        device=_device_for(model, run.method, run.membrane, device),
        method_options={**options, "voxel_size": run.voxel},
        sparse=sparse,
        progress=stage_progress(progress, run.share, 1.0, "propagation"),
        cancel=cancel,
    )
    return Propagation(
        out, sparse, run.method, run.voxel, run.calibration, run.notes, run.estimated
    )


@dataclass
class Adaptation:
    """Result of :func:`adapt`: the new model card and whether it beat the model in use.

    ``os.fspath(result)`` and ``str(result)`` give the card's path, so the result passes as
    ``model=`` anywhere. Errors are the adapted Rand error of the map's 2D watershed on the
    held-out corrected pixels (lower is better); None when that part holds no labels.
    ``card`` is a :class:`pathlib.Path`.
    """

    card: Path
    kept: bool
    score_before: float | None
    score_after: float | None
    scored_on: str
    seconds: float
    message: str

    def __fspath__(self) -> str:
        return str(self.card)

    def __str__(self) -> str:
        return str(self.card)


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
) -> Adaptation:
    """Fine-tune the membrane model in use on corrected reference slices, and say whether
    the result is better.

    ``model`` is the network to fine-tune (default: the model the other calls use for this
    pixel size, :func:`napari_emseg.models.cards.default_model`). Part of the
    corrections is held out of training (the last reference slice, or the right part of the
    only one) and segmented with both networks; ``kept`` says whether the adapted one did
    better there, i.e. whether to switch to it. The card (a ``.json`` with sha256-checked
    weights beside it) is written either way. ``steps`` and ``time_budget_s`` default to
    :mod:`napari_emseg.training.adapt`'s (a few hundred steps, at most 60 s in all).

    Parameters
    ----------
    image : ndarray or Volume, shape (Z, Y, X)
    labels : ndarray of int, shape (Z, Y, X)
        Labels whose ``ref_slices`` were corrected.
    ref_slices : int or iterable of int
    out : str
        The card to write (``.json``); its weights are written beside it.
    model, device, voxel_size : optional
        The network to fine-tune, where, and the stack's voxel size.
    steps, time_budget_s : optional
        How long to train (the training defaults when both are None).
    overwrite : bool
        Replace an existing card.
    progress, cancel : callable, optional

    Returns
    -------
    Adaptation
        The card, whether it is better (``kept``), both scores and one line for the user.

    Raises
    ------
    ValueError
        One line: no or empty reference slices, mismatched shapes, a classical ``model``
        (only a network can be adapted); an :class:`~napari_emseg.io.InputError` when ``out``
        is not a ``.json`` path, or it or its weights exist without ``overwrite``.

    Examples
    --------
    >>> result = adapt(image, labels, [12], out="mine.json")  # doctest: +SKIP
    >>> model = result.card if result.kept else None  # doctest: +SKIP
    """
    import json
    import time
    from pathlib import Path

    from napari_emseg.training import adapt as adaptation

    started = time.perf_counter()
    array, voxel = _unpack(image, voxel_size)
    refs = [int(ref_slices)] if np.isscalar(ref_slices) else [int(z) for z in ref_slices]
    budget = {"steps": steps} if steps is not None else {}
    if time_budget_s is not None:
        budget["time_budget_s"] = time_budget_s
    if model is None:  # the model every other call would use for this pixel size
        from napari_emseg.models.cards import default_model

        model = default_model(None if voxel is None else voxel[-1])
    base = check_model(model)  # its name, for the message
    card = adaptation.adapt(
        array,
        np.asarray(labels),
        refs,
        out=out,
        model=model,
        device=resolve_device(device),
        pixel_nm=None if voxel is None else voxel[-1],
        holdout=True,
        overwrite=overwrite,
        progress=progress,
        cancel=cancel,
        **budget,
    )
    written = json.loads(Path(card).read_text())
    check, steps_done = written["validation"], written["metrics"]["adapt_steps"]
    before, after, kept = check["error_before"], check["error_after"], check["kept"]
    if steps_done == 0:
        verdict = "not switched: no training step fitted in the time budget (give it more time)"
    elif before is None or after is None:
        verdict = f"not switched: {check['scored_on']} holds no labels to compare on"
    else:
        verdict = f"error {before:.3f} -> {after:.3f} on {check['scored_on']}: " + (
            "switched to it" if kept else f"not switched, {base} stays in use"
        )
    seconds = time.perf_counter() - started
    return Adaptation(
        card=Path(card),
        kept=bool(kept),
        score_before=before,
        score_after=after,
        scored_on=check["scored_on"],
        seconds=seconds,
        message=f"adapted {base} ({steps_done} steps, {seconds:.0f} s); {verdict}",
    )


def evaluate(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Scores of a segmentation, or of a membrane map, against ground truth.

    Instance labels (integers) give the SNEMI3D adapted Rand error and VOI split/merge; a float
    map in [0, 1] (1 = membrane) is also scored with ISBI 2012 V_rand/V_info (best threshold),
    and its adapted Rand error and VOI are those of its 2D watershed segmentation.

    Parameters
    ----------
    pred : ndarray
        Instance labels, or a membrane map in [0, 1].
    gt : ndarray of int
        Ground-truth labels of the same shape (0 = boundary, ignored).

    Returns
    -------
    dict of str to float
        ``are``, ``voi_split``, ``voi_merge`` (and ``vrand``, ``vinfo`` for a map).

    Raises
    ------
    ValueError
        One line, when the shapes differ or ``gt`` is not integer labels.

    Examples
    --------
    >>> gt = np.array([[[1, 1, 2, 2]]], np.uint32)
    >>> evaluate(gt, gt)["are"]
    0.0
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
    instance_gt = metrics.slice_components(gt) if is_boundary_map else gt
    split, merge = metrics.variation_of_information(pred, instance_gt)
    scores["are"] = metrics.adapted_rand_error(pred, instance_gt)
    scores["voi_split"], scores["voi_merge"] = split, merge
    return scores
