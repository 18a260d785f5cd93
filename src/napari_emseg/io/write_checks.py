"""Check and convert what a TIFF writer is given: output path, voxel size, ids or grey data."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_emseg.io.spec import TIFF_SUFFIXES
from napari_emseg.io.units import all_positive
from napari_emseg.io.volume import InputError, OutputExistsError


def check_output_path(
    path: str | os.PathLike[str],
    overwrite: bool,
    *,
    suffixes: tuple[str, ...] = TIFF_SUFFIXES,
    folder: bool = False,
) -> Path:
    """A writable output path that exists only if ``overwrite`` allows replacing it.

    ``suffixes`` are the accepted endings (TIFF by default); ``folder`` outputs (a Zarr store)
    must not be files, file outputs must not be folders.

    Examples
    --------
    >>> check_output_path("labels.png", False)
    Traceback (most recent call last):
    ...
    napari_emseg.io.volume.InputError: labels.png must end in .tif or .tiff
    """
    out = Path(os.path.expanduser(os.fspath(path)))
    if out.suffix.lower() not in suffixes:
        raise InputError(f"{out} must end in {' or '.join(suffixes)}")
    if folder and out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder: choose another name")
    if not folder and out.is_dir():
        raise InputError(f"{out} is a folder: give a file name ending in {suffixes[0]}")
    if out.exists() and not overwrite:
        raise OutputExistsError(out)
    parent = out.parent
    if not parent.is_dir():
        raise InputError(f"output folder {parent} does not exist: create it or choose another")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"output folder {parent} is not writable: choose another folder")
    return out


def check_scale(scale: Sequence[float]) -> tuple[float, float, float]:
    """Positive (z, y, x) voxel size; a (y, x) pair gets z = 1.

    Examples
    --------
    >>> check_scale((4, 4))
    (1.0, 4.0, 4.0)
    """
    try:
        values = [float(v) for v in np.asarray(scale, dtype=float).ravel()]
    except (TypeError, ValueError) as exc:
        raise InputError(f"scale {scale!r} is not a list of numbers: pass (z, y, x)") from exc
    if len(values) == 2:
        values = [1.0, *values]
    values = values[-3:]
    if len(values) != 3 or not all_positive(values):
        raise InputError(f"scale {tuple(scale)} must be 3 positive numbers (z, y, x)")
    return values[0], values[1], values[2]


def _drop_leading_singletons(array: np.ndarray, what: str) -> np.ndarray:
    """A non-empty (Z, Y, X) view: 2D gains a z axis, extra leading size-1 axes go."""
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


def labels_for_tiff(labels: np.ndarray) -> np.ndarray:
    """Ids as contiguous (Z, Y, X) uint16, or uint32 when an id exceeds 65535."""
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


def image_for_tiff(data: np.ndarray) -> np.ndarray:
    """Grey data as contiguous (Z, Y, X) in a pixel type ImageJ knows (see write_image_tiff)."""
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
