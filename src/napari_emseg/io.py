"""Read EM volumes and write segmentations that open correctly in Fiji.

Everything here is numpy in, numpy out: no napari, no Qt, no torch. The napari reader and writer
hooks (:mod:`napari_emseg._reader`, :mod:`napari_emseg._writer`), the CLI and the widgets all go
through :func:`read_volume`, :func:`write_labels_tiff` and :func:`write_image_tiff`.

Supported inputs
----------------
- a multi-page TIFF (``stack.tif``); voxel size from ImageJ or OME-XML metadata;
- a folder of 2D ``.tif``/``.tiff``/``.png`` slices, stacked in natural order;
- HDF5: ``file.h5`` holding one 2D/3D dataset, or ``file.h5:/path/to/dataset``;
- Zarr: an array folder, ``store.zarr:/path``, a group holding one array, or an OME-Zarr image.

Every problem a user can fix is raised as :class:`InputError`, whose message is one line that names
the file and says what to do.
"""

from __future__ import annotations

import logging
import math
import os
import re
import uuid
import warnings
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

__all__ = [
    "LABELS_MARKER",
    "InputError",
    "Volume",
    "is_supported_path",
    "parse_input_spec",
    "read_volume",
    "write_image_tiff",
    "write_labels_tiff",
]

#: Value of the TIFF Software tag that :func:`write_labels_tiff` writes and :func:`read_volume`
#: trusts as "this file holds labels". Fiji ignores the tag, so it costs nothing there.
LABELS_MARKER = "napari-emseg labels"
#: Software tag of :func:`write_image_tiff`; marks the file as an image whatever its dtype or name.
IMAGE_MARKER = "napari-emseg image"

TIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIXES = (".png",)
SLICE_SUFFIXES = TIFF_SUFFIXES + PNG_SUFFIXES
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
ZARR_SUFFIXES = (".zarr",)
_ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")
SUPPORTED_FORMS = (
    "a .tif/.tiff stack, a folder of .tif/.png slices, file.h5 or file.h5:/dataset, "
    "store.zarr or store.zarr:/array"
)

# Label-ish words in a file stem or dataset path (rule (b) of the labels guess).
_LABEL_WORDS = frozenset(
    {
        "label",
        "labels",
        "seg",
        "segs",
        "segmentation",
        "segmentations",
        "gt",
        "groundtruth",
        "instance",
        "instances",
        "id",
        "ids",
        "mask",
        "masks",
    }
)
_ID_DTYPES = (np.uint32, np.int32, np.uint64, np.int64)

# Length units as written by ImageJ, OME and OME-Zarr, in nanometres.
_NM_PER_UNIT = {
    "pm": 1e-3,
    "picometer": 1e-3,
    "a": 0.1,
    "å": 0.1,
    "angstrom": 0.1,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "um": 1e3,
    "µm": 1e3,  # micro sign U+00B5
    "μm": 1e3,  # greek mu U+03BC
    "micron": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimetre": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "m": 1e9,
    "meter": 1e9,
    "metre": 1e9,
}
_UNIT_SCALE = (1.0, 1.0, 1.0)


class InputError(ValueError):
    """A user-facing problem with an input or output path.

    ``str(err)`` is ONE line naming the problem and the fix, fit for a napari notification or a CLI
    error. Newlines in the message are folded into spaces.

    Examples
    --------
    >>> str(InputError("scan.tif does not exist:\\n check the path"))
    'scan.tif does not exist: check the path'
    """

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass
class Volume:
    """A volume read from disk, ready to become a napari layer.

    Attributes
    ----------
    data : np.ndarray
        Array of shape (Z, Y, X); a 2D image is returned as (1, Y, X). Native byte order.
    scale : tuple of float
        Voxel size (z, y, x); in nm when the unit is known, else ``(1.0, 1.0, 1.0)``.
    unit : str
        ``"nm"`` when physical metadata was found, else ``"pixel"``.
    is_labels : bool
        True for a segmentation (integer ids), False for an intensity image.
    name : str
        A layer name, e.g. the file stem.

    Examples
    --------
    >>> import numpy as np
    >>> vol = Volume(np.zeros((1, 4, 4), np.uint8), (1.0, 1.0, 1.0), "pixel", False, "blank")
    >>> vol.data.shape
    (1, 4, 4)
    """

    data: np.ndarray
    scale: tuple[float, float, float]
    unit: str
    is_labels: bool
    name: str


@dataclass
class _Raw:
    """What a format-specific reader found, before the shared checks in :func:`read_volume`."""

    data: np.ndarray
    axes: str | None = None  # tifffile axis letters when known, e.g. "ZYX", "CYX", "YXS"
    scale: tuple[float, float, float] | None = None  # nm, or None when unknown
    marker: str | None = None  # our TIFF Software marker, if any
    names: tuple[str, ...] = ()  # extra names for the labels guess (dataset path parts)
    name: str | None = None  # layer name, when the file stem is not the right one


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


def parse_input_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """Split ``"container:/inner/path"`` into the file path and the path inside it.

    An existing file or folder is taken whole, so a ``:`` inside an ordinary file name works.
    Otherwise the string is split at the first ``:`` whose left part exists or ends in an HDF5 or
    Zarr extension. The inner path is returned with one leading ``/``; ``"file.h5:/"`` gives
    ``"/"`` (the root group).

    Parameters
    ----------
    spec : str or os.PathLike
        ``"stack.tif"``, ``"file.h5:/group/ds"``, ``"store.zarr:/labels"``, ...

    Returns
    -------
    path : Path
        The file or folder on disk.
    inner : str or None
        The path inside an HDF5 file or Zarr store, or None.

    Examples
    --------
    >>> parse_input_spec("sample_A.h5:/volumes/raw")
    (PosixPath('sample_A.h5'), '/volumes/raw')
    >>> parse_input_spec("stack.tif")
    (PosixPath('stack.tif'), None)
    """
    text = os.fspath(spec)
    if not isinstance(text, str):  # bytes paths: decode like the OS would
        text = os.fsdecode(text)
    text = os.path.expanduser(text)
    if not text.strip():
        raise InputError("no input path given: pass a file or folder")
    if os.path.exists(text):
        return Path(text), None
    for match in re.finditer(":", text):
        left, right = text[: match.start()], text[match.end() :]
        if not left:
            continue
        suffix = Path(left).suffix.lower()
        if suffix in HDF5_SUFFIXES + ZARR_SUFFIXES or os.path.exists(left):
            inner = "/" + right.strip("/")
            return Path(left), inner
    return Path(text), None


def _is_zarr_dir(path: Path) -> bool:
    return path.is_dir() and (
        path.suffix.lower() in ZARR_SUFFIXES or any((path / m).is_file() for m in _ZARR_MARKERS)
    )


def _slice_files(folder: Path) -> list[Path]:
    # Hidden files include macOS "._slice.tif" resource forks, which are not images.
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in SLICE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=_natural_key)


def _natural_key(path: Path) -> tuple[object, ...]:
    """Sort key that puts ``slice2`` before ``slice10``.

    ``re.split`` with a capture group alternates text and digit runs, always starting with text,
    so keys compare str with str and int with int.
    """
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def is_supported_path(spec: str | os.PathLike[str]) -> bool:
    """Cheap check, by extension or folder contents, whether :func:`read_volume` handles ``spec``.

    Used by the napari reader hook, so it never reads image data: a TIFF, PNG or HDF5 file by its
    extension, a Zarr store by its name or marker files, a folder when it holds at least one
    ``.tif``/``.tiff``/``.png`` file.

    Examples
    --------
    >>> is_supported_path("stack.tif"), is_supported_path("notes.txt")
    (True, False)
    >>> is_supported_path("sample_A.h5:/volumes/raw")
    True
    """
    try:
        path, inner = parse_input_spec(spec)
    except (TypeError, ValueError):
        return False
    suffix = path.suffix.lower()
    if inner is not None:
        return suffix in HDF5_SUFFIXES + ZARR_SUFFIXES or _is_zarr_dir(path)
    if suffix in SLICE_SUFFIXES + HDF5_SUFFIXES and not path.is_dir():
        return True
    if suffix in ZARR_SUFFIXES or _is_zarr_dir(path):
        return True
    if path.is_dir():
        try:
            with os.scandir(path) as entries:
                return any(
                    Path(e.name).suffix.lower() in SLICE_SUFFIXES and not e.name.startswith(".")
                    for e in entries
                )
        except OSError:
            return False
    return False


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_volume(spec: str | os.PathLike[str], *, as_labels: bool | None = None) -> Volume:
    """Read an EM stack or a segmentation into memory as a (Z, Y, X) :class:`Volume`.

    Parameters
    ----------
    spec : str or os.PathLike
        A ``.tif``/``.tiff`` stack; a folder of 2D ``.tif``/``.tiff``/``.png`` slices (natural
        order: ``s2`` before ``s10``); ``file.h5`` with exactly one 2D/3D dataset, or
        ``file.h5:/path/to/dataset``; a Zarr array folder, ``store.zarr:/path``, a Zarr group with
        exactly one array, or an OME-Zarr image (its full-resolution level).
    as_labels : bool, optional
        Force the result to be labels (True) or an image (False). By default it is guessed:

        1. a TIFF written by :func:`write_labels_tiff` (Software tag ``"napari-emseg labels"``)
           is labels; one written by :func:`write_image_tiff` is an image;
        2. else a float array is an image;
        3. else an integer (or bool) array is labels when the file stem, or a part of the
           HDF5/Zarr dataset path, is one of ``label(s)``, ``seg(s)``, ``segmentation``, ``gt``,
           ``groundtruth``, ``instance(s)``, ``id(s)``, ``mask(s)`` (case-insensitive, as a word:
           ``train-labels``, ``neuron_ids``, ``segGT``, ``seg2``);
        4. else uint32/int32/uint64/int64 data is labels (too many levels for an EM image);
        5. everything else (uint8/uint16 grey without those hints) is an image.

    Returns
    -------
    Volume
        ``data`` has shape (Z, Y, X) (a 2D image gives (1, Y, X)) and native byte order; bool data
        becomes uint8. ``scale`` is the voxel size in nm when the file says so (ImageJ
        ``unit``/``spacing`` and X/YResolution, OME ``PhysicalSize*``, HDF5/Zarr attributes
        ``element_size_um`` in micron or ``resolution``/``voxel_size`` in nm, OME-Zarr
        ``coordinateTransformations``), else ``(1.0, 1.0, 1.0)`` with unit ``"pixel"``. ImageJ
        files without ``spacing`` get a z size of 1 unit, as Fiji shows them; other formats that
        give only y and x get z = x.

    Raises
    ------
    InputError
        The path is missing, unsupported, unreadable, empty, has a zero-sized or extra dimension,
        or names no dataset. The message is one line with the fix.

    Warns
    -----
    UserWarning
        An RGB(A) file whose colour channels are all equal is read as greyscale (alpha dropped).
        RGB files with real colour raise InputError.

    Examples
    --------
    >>> vol = read_volume("train-volume.tif")  # doctest: +SKIP
    >>> vol.data.shape, vol.scale, vol.unit, vol.is_labels  # doctest: +SKIP
    ((30, 512, 512), (50.0, 4.0, 4.0), 'nm', False)
    >>> read_volume("cremi_A.h5:/volumes/labels/neuron_ids").is_labels  # doctest: +SKIP
    True
    """
    path, inner = parse_input_spec(spec)
    if not path.exists():
        raise InputError(f"{path} does not exist: check the path (supported: {SUPPORTED_FORMS})")
    suffix = path.suffix.lower()
    if _is_zarr_dir(path):
        raw = _read_zarr(path, inner)
    elif suffix in HDF5_SUFFIXES and path.is_file():
        raw = _read_hdf5(path, inner)
    elif inner is not None:
        raise InputError(
            f"{path} is not an HDF5 file or a Zarr store, so '{path}:{inner}' cannot name a "
            "dataset in it: pass the file alone"
        )
    elif path.is_dir():
        raw = _read_slice_folder(path)
    elif suffix in TIFF_SUFFIXES:
        raw = _read_tiff(path)
    elif suffix in PNG_SUFFIXES:
        raw = _read_png(path)
    else:
        raise InputError(
            f"{path} has an unsupported extension '{path.suffix}': napari-emseg reads "
            f"{SUPPORTED_FORMS}; convert it to TIFF (e.g. in Fiji: File > Save As > Tiff)"
        )
    return _finish(path, raw, as_labels)


def _finish(path: Path, raw: _Raw, as_labels: bool | None) -> Volume:
    """Checks and conversions shared by every format."""
    data = _to_zyx(raw.data, raw.axes, path)
    if not data.dtype.isnative:  # ImageJ writes big-endian by default; napari/torch prefer native
        data = data.astype(data.dtype.newbyteorder("="))
    if data.dtype == np.bool_:
        data = data.view(np.uint8)
    if data.dtype.kind not in "iuf":
        raise InputError(
            f"{path} holds {data.dtype} data: napari-emseg needs integer or float pixels; "
            "save the image as 8-bit, 16-bit or 32-bit grey"
        )
    name = raw.name or _stem(path)
    if as_labels is None:
        is_labels = _guess_is_labels(data.dtype, (_stem(path), *raw.names), raw.marker)
    else:
        is_labels = bool(as_labels)
    if is_labels and data.dtype.kind == "f":
        data = _float_ids(data, path)
    if raw.scale is None:
        scale, unit = _UNIT_SCALE, "pixel"
    else:
        scale, unit = raw.scale, "nm"
    return Volume(data=data, scale=scale, unit=unit, is_labels=is_labels, name=name)


def _float_ids(data: np.ndarray, path: Path) -> np.ndarray:
    """Float data asked for as labels: accept whole numbers >= 0 (some tools store ids as float)."""
    whole = np.isfinite(data).all() and np.array_equal(data, np.round(data))
    if not whole or data.min() < 0 or data.max() > np.iinfo(np.uint32).max:
        raise InputError(
            f"{path} holds fractional or negative float values, which cannot be label ids: open "
            "it as an image"
        )
    return data.astype(np.uint16 if data.max() <= np.iinfo(np.uint16).max else np.uint32)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem if path.suffix else name


def _guess_is_labels(dtype: np.dtype[Any], names: Sequence[str], marker: str | None) -> bool:
    """The labels rule documented in :func:`read_volume`."""
    if marker == LABELS_MARKER:
        return True
    if marker == IMAGE_MARKER or dtype.kind == "f":
        return False
    if dtype.kind not in "iub":
        return False
    if any(_has_label_word(n) for n in names):
        return True
    return any(dtype == np.dtype(t) for t in _ID_DTYPES)


def _has_label_word(name: str) -> bool:
    # camelCase -> words ("segGT" -> "seg GT"), then split on anything not a letter or digit and
    # strip digits at the ends of words ("labels01", "3d").
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower()
    words = {w.strip("0123456789") for w in re.split(r"[^a-z0-9]+", spaced)}
    compact = re.sub(r"[^a-z]", "", spaced)
    return bool(words & _LABEL_WORDS) or "groundtruth" in compact


def _to_zyx(data: np.ndarray, axes: str | None, path: Path) -> np.ndarray:
    """Squeeze singleton axes, turn grey-in-effect RGB into grey and return (Z, Y, X)."""
    if data.ndim == 0 or data.size == 0 or 0 in data.shape:
        raise InputError(
            f"{path} has a zero-sized dimension (shape {data.shape}): it holds no image data; "
            "re-export it"
        )
    if axes is None or len(axes) != data.ndim:
        axes = "?" * data.ndim
    if axes[-1] == "S":
        data, axes = _rgb_to_grey(data, path), axes[:-1]
    keep = [i for i, n in enumerate(data.shape) if n != 1]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if data.ndim < 2:
        raise InputError(
            f"{path} is {data.ndim}D (shape {data.shape}), not an image: napari-emseg needs a "
            "2D image or a Z,Y,X stack"
        )
    if data.ndim > 3 or "C" in axes[:-2] or "S" in axes:
        if set(axes) == {"?"}:  # HDF5/Zarr: no axis names
            described = "shape " + "x".join(map(str, data.shape))
            fix = "write one channel as a 3D dataset and name it with file:/path"
        else:
            described = ",".join(a.replace("?", "Q") for a in axes) + f"; shape {data.shape}"
            fix = "save one channel (Fiji: Image > Color > Split Channels)"
        raise InputError(
            f"{path} is {data.ndim}D ({described}): napari-emseg needs a single-channel Z,Y,X "
            f"stack: {fix}"
        )
    if data.ndim == 2:
        data = data[np.newaxis]
    return data


def _rgb_to_grey(data: np.ndarray, path: Path) -> np.ndarray:
    """Return the first channel of RGB(A)/grey+alpha data whose colour channels are equal."""
    samples = data.shape[-1]
    colour = data[..., : 3 if samples >= 3 else 1]
    grey = colour[..., 0]
    if samples not in (2, 3, 4) or any(
        not np.array_equal(grey, colour[..., c]) for c in range(1, colour.shape[-1])
    ):
        raise InputError(
            f"{path} is an RGB colour image: napari-emseg needs single-channel grey data; "
            "convert it (Fiji: Image > Type > 8-bit) and save again"
        )
    warnings.warn(
        f"{path.name} is stored as RGB(A) with equal colour channels; reading it as greyscale",
        UserWarning,
        stacklevel=5,  # read_volume's caller
    )
    return np.ascontiguousarray(grey)


def _short(exc: BaseException) -> str:
    """First line of a library error, for embedding in a one-line message."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    first = first if len(first) <= 160 else first[:157] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _positive(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) and v > 0 for v in values)


def _round(value: float) -> float:
    # TIFF stores 1/size as a rational; 6 significant digits undoes its rounding (3.8 -> 3.8).
    return float(f"{value:.6g}")


def _nm_per(unit: object) -> float | None:
    """Nanometres per ``unit`` (ImageJ, OME or OME-Zarr spelling), or None when not a length."""
    if not isinstance(unit, str):
        return None
    key = unit.strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ").lower()
    if key.endswith("s") and key[:-1] in _NM_PER_UNIT:  # "microns", "nanometers"
        key = key[:-1]
    return _NM_PER_UNIT.get(key)


def _nm_scale(z: float | None, y: float, x: float, factor: float) -> tuple[float, float, float]:
    z = x if z is None else z
    return (_round(z * factor), _round(y * factor), _round(x * factor))


# --- TIFF -------------------------------------------------------------------------------------


class _LogCollector(logging.Handler):
    """Collects tifffile's error log records: it logs, rather than raises, on many corrupt files."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _tifffile_errors() -> Iterator[_LogCollector]:
    logger = logging.getLogger("tifffile")
    handler = _LogCollector()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _unreadable(path: Path, what: str, detail: str) -> InputError:
    return InputError(
        f"{path} is not a readable {what} ({detail}): the file may be truncated or corrupt; "
        "copy or export it again"
    )


def _read_tiff(path: Path, *, slice_file: bool = False) -> _Raw:
    try:
        with _tifffile_errors() as log, tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            data = series.asarray()
            scale = _tiff_scale(tif, slice_file=slice_file)
            marker = _tiff_software(tif)
            expected = (tif.imagej_metadata or {}).get("images")
    except MemoryError as exc:
        raise InputError(
            f"{path} is too large to read into memory: crop it or read a smaller region"
        ) from exc
    except Exception as exc:  # tifffile/imagecodecs raise many types on bad files
        raise _unreadable(path, "TIFF", _short(exc)) from exc
    if log.messages:
        raise _unreadable(path, "TIFF", log.messages[0])
    planes = math.prod(n for a, n in zip(axes, data.shape, strict=True) if a not in "YXS")
    if isinstance(expected, int) and expected > planes:
        raise _unreadable(path, "TIFF", f"ImageJ header says {expected} images, found {planes}")
    return _Raw(data=data, axes=axes, scale=scale, marker=marker)


def _tiff_software(tif: tifffile.TiffFile) -> str | None:
    tag = tif.pages[0].tags.get("Software")
    return str(tag.value).strip() if tag is not None else None


def _tiff_scale(
    tif: tifffile.TiffFile, *, slice_file: bool = False
) -> tuple[float, float, float] | None:
    """Voxel size in nm from OME-XML or ImageJ metadata, or None.

    ImageJ without ``spacing`` means a z size of 1 unit (what Fiji shows), except for one 2D file
    of a slice folder, where z = x is the better guess.
    """
    if tif.is_ome and tif.ome_metadata:
        scale = _ome_xml_scale(tif.ome_metadata)
        if scale is not None:
            return scale
    meta = tif.imagej_metadata
    if not meta:
        return None
    factor = _nm_per(meta.get("unit"))
    if factor is None:
        return None
    tags = tif.pages[0].tags
    sizes = []
    for name in ("YResolution", "XResolution"):
        tag = tags.get(name)
        pixels_per_unit = 1.0
        if tag is not None:
            num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
            pixels_per_unit = num / den if den else 0.0
        sizes.append(1.0 / pixels_per_unit if pixels_per_unit > 0 else math.nan)
    if "spacing" in meta:
        z = float(meta["spacing"]) * (_nm_per(meta.get("zunit")) or factor)
    else:
        z = sizes[1] * factor if slice_file else factor
    scale = (_round(z), _round(sizes[0] * factor), _round(sizes[1] * factor))
    return scale if _positive(scale) else None


def _ome_xml_scale(xml: str) -> tuple[float, float, float] | None:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    sizes: dict[str, float] = {}
    for axis in "ZYX":
        value = pixels.get(f"PhysicalSize{axis}")
        factor = _nm_per(pixels.get(f"PhysicalSize{axis}Unit", "µm"))  # OME default is µm
        if value is None or factor is None:
            continue
        try:
            sizes[axis] = float(value) * factor
        except ValueError:
            continue
    if "X" not in sizes or "Y" not in sizes:
        return None
    scale = _nm_scale(sizes.get("Z"), sizes["Y"], sizes["X"], 1.0)
    return scale if _positive(scale) else None


# --- PNG and slice folders --------------------------------------------------------------------


def _read_png(path: Path) -> _Raw:
    import imagecodecs  # tifffile's codec package; decodes PNG without a plugin search

    try:
        data = imagecodecs.png_decode(path.read_bytes())
    except MemoryError as exc:
        raise InputError(f"{path} is too large to read into memory") from exc
    except Exception as exc:
        raise _unreadable(path, "PNG", _short(exc)) from exc
    axes = "YXS" if data.ndim == 3 else "YX"
    return _Raw(data=data, axes=axes)


def _read_slice(path: Path) -> _Raw:
    if path.suffix.lower() in PNG_SUFFIXES:
        return _read_png(path)
    return _read_tiff(path, slice_file=True)


def _read_slice_folder(folder: Path) -> _Raw:
    files = _slice_files(folder)
    if not files:
        raise InputError(
            f"{folder} holds no .tif/.tiff/.png slices: put the 2D slices of one stack in this "
            "folder, or pass a stack file"
        )
    first = _read_slice(files[0])
    with warnings.catch_warnings(record=True) as caught:
        # One warning for the folder, not one per slice.
        warnings.simplefilter("always", UserWarning)
        plane = _to_zyx(first.data, first.axes, files[0])
        rgb_grey = bool(caught)
    if plane.shape[0] != 1:
        raise InputError(
            f"{files[0]} is a stack of {plane.shape[0]} images, not a 2D slice: a slice folder "
            "must hold one 2D image per file; open the stack file itself"
        )
    stack = np.empty((len(files), *plane.shape[1:]), dtype=plane.dtype)
    stack[0] = plane[0]
    for index, file in enumerate(files[1:], start=1):
        raw = _read_slice(file)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            current = _to_zyx(raw.data, raw.axes, file)
        if current.shape != plane.shape:
            raise InputError(
                f"{file} is {_yx(current.shape)} but {files[0].name} is {_yx(plane.shape)}: all "
                f"slices in {folder} must have the same size; crop or pad them"
            )
        if current.dtype != plane.dtype:
            raise InputError(
                f"{file} is {current.dtype} but {files[0].name} is {plane.dtype}: all slices in "
                f"{folder} must have the same pixel type; convert them"
            )
        stack[index] = current[0]
    if rgb_grey:
        warnings.warn(
            f"the slices in {folder.name} are stored as RGB(A) with equal colour channels; "
            "reading them as greyscale",
            UserWarning,
            stacklevel=3,
        )
    return _Raw(data=stack, axes="ZYX", scale=first.scale, marker=first.marker)


def _yx(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape[-2:]))


# --- HDF5 and Zarr ----------------------------------------------------------------------------


def _scale_from_attrs(
    attrs: Mapping[str, Any], shape: tuple[int, ...]
) -> tuple[float, float, float] | None:
    """Voxel size in nm from ilastik (``element_size_um``) or CREMI-style attributes."""
    for key, factor in (("element_size_um", 1e3), ("resolution", 1.0), ("voxel_size", 1.0)):
        if key not in attrs:
            continue
        try:
            values = [float(v) for v in np.asarray(attrs[key], dtype=float).ravel()]
        except (TypeError, ValueError):
            continue
        if len(values) == len(shape) and len(values) > 3:
            # One value per axis (e.g. ilastik z,y,x,c): keep the axes that survive squeezing.
            values = [v for v, n in zip(values, shape, strict=True) if n != 1]
        if len(values) == 3:
            scale = _nm_scale(values[0], values[1], values[2], factor)
        elif len(values) == 2:
            scale = _nm_scale(None, values[0], values[1], factor)
        else:
            continue
        if _positive(scale):
            return scale
    return None


def _path_words(inner: str) -> tuple[str, ...]:
    return tuple(part for part in inner.split("/") if part)


def _layer_name(path: Path, inner: str, auto: bool) -> str | None:
    # A dataset the user named (or one of several) is part of the layer name; a lone one is not.
    if auto:
        return None
    leaf = _path_words(inner)[-1] if _path_words(inner) else ""
    return f"{_stem(path)}-{leaf}" if leaf else None


def _choose_one(path: Path, found: list[tuple[str, tuple[int, ...]]], where: str) -> str:
    """Pick the single 2D/3D array among ``found`` or raise a one-line error listing them."""
    images = [(p, s) for p, s in found if len([n for n in s if n != 1]) in (2, 3)]
    listing = ", ".join(f"{p} {tuple(s)}" for p, s in (images or found)[:8])
    more = len(images or found) - 8
    listing += f" and {more} more" if more > 0 else ""
    if len(images) == 1:
        return images[0][0]
    if not images:
        if not found:
            raise InputError(f"{path}{where} holds no datasets: check that it is the right file")
        raise InputError(
            f"{path}{where} holds no 2D/3D dataset (found: {listing}): name one with "
            f"{path}:/path/to/dataset"
        )
    raise InputError(
        f"{path}{where} holds several image datasets ({listing}): choose one with "
        f"{path}:{images[0][0]}"
    )


def _read_hdf5(path: Path, inner: str | None) -> _Raw:
    import h5py

    with suppress(ImportError):  # registers extra filters (blosc, lz4, zstd) when installed
        import hdf5plugin  # noqa: F401
    try:
        handle = h5py.File(path, "r")
    except Exception as exc:
        raise _unreadable(path, "HDF5 file", _short(exc)) from exc
    with handle:
        node: Any = handle
        where = ""
        if inner is not None and inner != "/":
            if inner not in handle:
                found = _h5_datasets(handle)
                names = ", ".join(p for p, _ in found[:8]) or "none"
                raise InputError(
                    f"{path} has no dataset '{inner}' (datasets: {names}): fix the path after ':'"
                )
            node = handle[inner]
            where = f":{inner}"
        auto = not isinstance(node, h5py.Dataset)
        if auto:
            node = handle[_choose_one(path, _h5_datasets(node), where)]
        try:
            data = np.asarray(node[()])
        except MemoryError as exc:
            raise InputError(
                f"{path}:{node.name} is too large to read into memory: crop it first"
            ) from exc
        except Exception as exc:
            detail = _short(exc)
            if "filter" in detail.lower():
                raise InputError(
                    f"{path}:{node.name} uses a compression filter that is not installed "
                    f"({detail}): pip install hdf5plugin"
                ) from exc
            raise _unreadable(path, "HDF5 dataset", detail) from exc
        scale = _scale_from_attrs(node.attrs, data.shape)
        name = node.name
    return _Raw(
        data=data,
        scale=scale,
        names=_path_words(name),
        name=_layer_name(path, name, auto and inner in (None, "/")),
    )


def _h5_datasets(group: Any) -> list[tuple[str, tuple[int, ...]]]:
    import h5py

    found: list[tuple[str, tuple[int, ...]]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            found.append((obj.name, tuple(obj.shape)))

    group.visititems(visit)
    return found


def _read_zarr(path: Path, inner: str | None) -> _Raw:
    import zarr  # works with the zarr 2 and zarr 3 APIs: open, arrays(), groups(), attrs

    try:
        root = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise InputError(
            f"{path} is not a readable Zarr store ({_short(exc)}): check that it is a Zarr "
            "array or group folder"
        ) from exc
    node: Any = root
    where = ""
    key = (inner or "/").strip("/")
    if key:
        if isinstance(root, zarr.Array):
            raise InputError(f"{path} is a single Zarr array: pass {path} without ':{inner}'")
        try:
            node = root[key]
        except Exception as exc:
            names = ", ".join(p for p, _ in _zarr_arrays(root)[:8]) or "none"
            raise InputError(
                f"{path} has no array or group '/{key}' (arrays: {names}): fix the path after ':'"
            ) from exc
        where = f":/{key}"
    auto = not isinstance(node, zarr.Array)
    scale = None
    array_path = key
    if auto:
        multiscale = _ome_multiscale(node.attrs)
        if multiscale is not None:
            sub, scale = multiscale
        else:
            sub = _choose_one(path, _zarr_arrays(node), where).lstrip("/")
        array_path = f"{key}/{sub}".strip("/")
        try:
            node = node[sub]
        except Exception as exc:
            raise InputError(
                f"{path}{where} names a dataset '{sub}' that is missing: the store is incomplete"
            ) from exc
    try:
        data = np.asarray(node[...])
    except MemoryError as exc:
        raise InputError(f"{path} is too large to read into memory: crop it first") from exc
    except Exception as exc:
        raise _unreadable(path, "Zarr array", _short(exc)) from exc
    if scale is None:
        scale = _scale_from_attrs(dict(node.attrs), data.shape)
    return _Raw(
        data=data,
        scale=scale,
        names=_path_words(array_path),
        name=_layer_name(path, array_path, not key),
    )


def _zarr_arrays(group: Any, prefix: str = "") -> list[tuple[str, tuple[int, ...]]]:
    found = [(f"{prefix}/{name}", tuple(arr.shape)) for name, arr in group.arrays()]
    for name, sub in group.groups():
        found.extend(_zarr_arrays(sub, f"{prefix}/{name}"))
    return sorted(found)


def _ome_multiscale(
    attrs: Mapping[str, Any],
) -> tuple[str, tuple[float, float, float] | None] | None:
    """(path of the full-resolution array, its voxel size in nm or None) of an OME-Zarr image."""
    attrs = dict(attrs)
    multiscales = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    if not multiscales or not isinstance(multiscales, list):
        return None
    image = multiscales[0]
    if not isinstance(image, dict):
        return None
    datasets = image.get("datasets") or []
    if not datasets or "path" not in datasets[0]:
        return None
    axes = image.get("axes") or []
    ndim = len(axes)
    scale = [1.0] * ndim
    # The dataset's own transform times the optional image-wide one (OME-NGFF 0.4/0.5).
    transforms = [
        *(datasets[0].get("coordinateTransformations") or []),
        *(image.get("coordinateTransformations") or []),
    ]
    for t in transforms:
        if t.get("type") == "scale" and len(t.get("scale", [])) == ndim:
            scale = [a * float(b) for a, b in zip(scale, t["scale"], strict=True)]
    spatial = []
    for axis, size in zip(axes, scale, strict=True):
        name, kind, unit = (
            (axis.get("name"), axis.get("type"), axis.get("unit"))
            if isinstance(axis, dict)
            else (axis, None, None)
        )
        if kind == "space" or (kind is None and name in ("z", "y", "x")):
            spatial.append((size, _nm_per(unit)))
    factors = {f for _, f in spatial}
    if len(spatial) not in (2, 3) or None in factors:
        return str(datasets[0]["path"]), None
    sizes = [s * f for s, f in spatial]  # type: ignore[operator]
    z = sizes[0] if len(sizes) == 3 else None
    nm = _nm_scale(z, sizes[-2], sizes[-1], 1.0)
    return str(datasets[0]["path"]), nm if _positive(nm) else None


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_labels_tiff(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    *,
    scale: Sequence[float] = (1.0, 1.0, 1.0),
    unit: str = "nm",
    overwrite: bool = False,
) -> Path:
    """Write a label volume as a TIFF that Fiji opens with the right axes and voxel size.

    The file is an ImageJ hyperstack (axes Z,Y,X; a 2D input is one slice), uncompressed because
    ImageJ's own TIFF reader does not read compressed hyperstacks. Ids up to 65535 are stored as
    uint16, larger ones as uint32. tifffile refuses uint32 ImageJ files, so for uint32 the ImageJ
    description (images, slices, spacing, unit) is written by hand; Fiji then shows the stack as
    32-bit float, where ids above 2**24 (16,777,216) lose precision. The voxel size goes into
    XResolution/YResolution (pixels per unit, ResolutionUnit none) and the ImageJ ``unit`` and
    ``spacing``. The TIFF Software tag is ``"napari-emseg labels"`` (:data:`LABELS_MARKER`), which
    :func:`read_volume` uses to open the file as labels again.

    The data go to a temporary file next to ``path`` that replaces ``path`` only once complete, so
    an interrupted write never leaves a half-written file in place of an old one.

    Parameters
    ----------
    path : str or os.PathLike
        Output file, ending in ``.tif`` or ``.tiff``; its folder must exist and be writable.
    labels : np.ndarray
        (Z, Y, X) or (Y, X) integer ids >= 0 (bool, or float holding whole numbers, also work).
        Extra leading axes of size 1 are dropped.
    scale : sequence of float
        Voxel size (z, y, x) in ``unit``; a (y, x) pair is accepted for 2D data.
    unit : str
        Length unit of ``scale``: ``"nm"``, ``"um"``/``"micron"``/``"µm"``, ... or ``"pixel"``.
    overwrite : bool
        Replace an existing file. Without it an existing ``path`` raises InputError.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        The file exists (and not ``overwrite``), the folder is missing or read-only, the ids are
        negative or above 2**32 - 1, or the data are not a 2D/3D integer array.

    Examples
    --------
    >>> import numpy as np
    >>> seg = np.zeros((2, 64, 64), np.uint32)
    >>> seg[:, 10:20, 10:20] = 70000
    >>> out = write_labels_tiff("seg.tif", seg, scale=(50, 4, 4))  # doctest: +SKIP
    >>> read_volume(out).data.dtype  # doctest: +SKIP
    dtype('uint32')
    """
    out = _check_output(path, overwrite)
    data = _labels_zyx(labels)
    sizes = _check_scale(scale)
    _write_tiff(out, data, sizes, unit, LABELS_MARKER)
    return out


def write_image_tiff(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    scale: Sequence[float] = (1.0, 1.0, 1.0),
    unit: str = "nm",
    overwrite: bool = False,
) -> Path:
    """Write a grey image volume (e.g. float32 membrane probabilities) as an ImageJ TIFF.

    Same conventions as :func:`write_labels_tiff` (axes Z,Y,X, voxel size in the ImageJ metadata,
    atomic replace, no overwrite unless asked). uint8, uint16, int16 and float32 are kept; float64
    and float16 become float32; bool becomes uint8; other integers become uint16 when their values
    fit, else float32 (the types ImageJ knows). The Software tag ``"napari-emseg image"`` makes
    :func:`read_volume` open the file as an image whatever its name.

    Parameters
    ----------
    path : str or os.PathLike
        Output file, ending in ``.tif`` or ``.tiff``.
    data : np.ndarray
        (Z, Y, X) or (Y, X) single-channel data.
    scale : sequence of float
        Voxel size (z, y, x) in ``unit``.
    unit : str
        Length unit of ``scale``.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        As :func:`write_labels_tiff`, or the data have channels or complex values.

    Examples
    --------
    >>> import numpy as np
    >>> prob = np.random.default_rng(0).random((2, 32, 32), dtype=np.float32)
    >>> out = write_image_tiff("membranes.tif", prob, scale=(50, 4, 4))  # doctest: +SKIP
    >>> read_volume(out).data.dtype  # doctest: +SKIP
    dtype('float32')
    """
    out = _check_output(path, overwrite)
    array = _image_zyx(data)
    sizes = _check_scale(scale)
    _write_tiff(out, array, sizes, unit, IMAGE_MARKER)
    return out


def _check_output(path: str | os.PathLike[str], overwrite: bool) -> Path:
    out = Path(os.path.expanduser(os.fspath(path)))
    if out.suffix.lower() not in TIFF_SUFFIXES:
        raise InputError(f"{out} must end in .tif or .tiff: napari-emseg writes TIFF files")
    if out.is_dir():
        raise InputError(f"{out} is a folder: give a file name ending in .tif")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; pass overwrite=True / --overwrite to replace it")
    folder = out.parent
    if not folder.is_dir():
        raise InputError(f"output folder {folder} does not exist: create it or choose another")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"output folder {folder} is not writable: choose another folder")
    return out


def _check_scale(scale: Sequence[float]) -> tuple[float, float, float]:
    try:
        values = [float(v) for v in np.asarray(scale, dtype=float).ravel()]
    except (TypeError, ValueError) as exc:
        raise InputError(f"scale {scale!r} is not a list of numbers: pass (z, y, x)") from exc
    if len(values) == 2:
        values = [1.0, *values]
    values = values[-3:]
    if len(values) != 3 or not _positive(values):
        raise InputError(f"scale {tuple(scale)} must be 3 positive numbers (z, y, x)")
    return values[0], values[1], values[2]


def _drop_leading_singletons(array: np.ndarray, what: str) -> np.ndarray:
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise InputError(
            f"the {what} have shape {array.shape}: napari-emseg writes 2D or Z,Y,X data; "
            "select one channel or time point first"
        )
    if array.size == 0:
        raise InputError(f"the {what} are empty (shape {array.shape}): nothing to write")
    return array


def _labels_zyx(labels: np.ndarray) -> np.ndarray:
    array = _drop_leading_singletons(np.asarray(labels), "labels")
    if array.dtype == np.bool_:
        array = array.view(np.uint8)
    if array.dtype.kind == "f":
        if not (np.isfinite(array).all() and np.array_equal(array, np.round(array))):
            raise InputError(
                "the labels hold fractional or NaN values: labels must be whole-number ids; "
                "use write_image_tiff for probabilities"
            )
    elif array.dtype.kind not in "iu":
        raise InputError(f"the labels are {array.dtype}: labels must be integer ids")
    low, high = array.min(), array.max()
    if low < 0:
        raise InputError(
            f"the labels hold negative ids (min {low}): ids must be >= 0; relabel them "
            "(skimage.segmentation.relabel_sequential)"
        )
    if high > np.iinfo(np.uint32).max:
        raise InputError(
            f"the labels hold ids up to {high}, above 2**32 - 1: relabel them "
            "(skimage.segmentation.relabel_sequential) before saving"
        )
    dtype = np.uint16 if high <= np.iinfo(np.uint16).max else np.uint32
    return np.ascontiguousarray(array, dtype=dtype)


def _image_zyx(data: np.ndarray) -> np.ndarray:
    array = _drop_leading_singletons(np.asarray(data), "image data")
    kind = array.dtype.kind
    if array.dtype == np.bool_:
        return np.ascontiguousarray(array.view(np.uint8))
    if array.dtype in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16)):
        return np.ascontiguousarray(array.astype(array.dtype.newbyteorder("="), copy=False))
    if kind == "f":
        return np.ascontiguousarray(array, dtype=np.float32)
    if kind in "iu":
        fits = array.min() >= 0 and array.max() <= np.iinfo(np.uint16).max
        return np.ascontiguousarray(array, dtype=np.uint16 if fits else np.float32)
    raise InputError(f"the image data are {array.dtype}: save grey integer or float data")


def _imagej_unit(unit: str) -> str:
    """The unit as ImageJ spells it (7-bit ASCII; 'micron' for µm)."""
    factor = _nm_per(unit)
    if factor == 1e3:
        return "micron"
    if factor is not None:
        return unit.strip()
    if unit.strip().lower() in ("pixel", "pixels", "px", ""):
        return "pixel"
    if not unit.isascii():
        raise InputError(f"unit {unit!r} is not a length unit napari-emseg knows: use 'nm'")
    return unit.strip()


def _write_tiff(
    out: Path,
    data: np.ndarray,
    scale: tuple[float, float, float],
    unit: str,
    software: str,
) -> None:
    z, y, x = scale
    ij_unit = _imagej_unit(unit)
    options: dict[str, Any] = {
        "photometric": "minisblack",
        "resolution": (1.0 / x, 1.0 / y),
        "resolutionunit": tifffile.RESUNIT.NONE,
        "software": software,
    }
    if data.dtype == np.uint32:
        # tifffile's imagej=True rejects uint32, but ImageJ reads 32-bit unsigned integer pages
        # (as float): write its description by hand. metadata=None stops the JSON description.
        options["description"] = tifffile.imagej_description(
            data.shape, axes="ZYX", spacing=z, unit=ij_unit
        )
        options["metadata"] = None
    else:
        options["imagej"] = True
        options["metadata"] = {"axes": "ZYX", "spacing": z, "unit": ij_unit}

    def write(target: Path) -> None:
        tifffile.imwrite(target, data, **options)

    _atomic_write(out, write)


def _atomic_write(out: Path, write: Callable[[Path], None]) -> None:
    """Run ``write`` on a temporary file beside ``out``, then move it into place."""
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        # O_EXCL: never clobber someone else's file; mode 0o666 & ~umask like a normal file.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(tmp)
        os.replace(tmp, out)
    except BaseException as exc:
        with suppress(OSError):  # best effort; the original error matters more
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(
                f"cannot write {out} ({_short(exc)}): check free space and permissions"
            ) from exc
        raise
