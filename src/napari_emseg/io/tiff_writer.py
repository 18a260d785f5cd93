"""Write labels and grey images as ImageJ TIFFs that Fiji opens with the right axes and scale."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_emseg.io.atomic import atomic_write
from napari_emseg.io.labels_rule import IMAGE_MARKER, LABELS_MARKER
from napari_emseg.io.units import nm_per_unit
from napari_emseg.io.volume import InputError
from napari_emseg.io.write_checks import (
    check_output_path,
    check_scale,
    image_for_tiff,
    labels_for_tiff,
)


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
    out = check_output_path(path, overwrite)
    data = labels_for_tiff(labels)
    sizes = check_scale(scale)
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
    out = check_output_path(path, overwrite)
    array = image_for_tiff(data)
    sizes = check_scale(scale)
    _write_tiff(out, array, sizes, unit, IMAGE_MARKER)
    return out


def _imagej_unit(unit: str) -> str:
    """The unit as ImageJ spells it (7-bit ASCII; 'micron' for µm)."""
    factor = nm_per_unit(unit)
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
    """ImageJ hyperstack (Z,Y,X) with voxel size and our Software marker, written atomically."""
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
        # An explicit sample axis: tifffile's ImageJ writer drops a trailing size-1 axis, which
        # would store a (Z, Y, 1) stack as one Z-by-Y page. Same bytes for every other shape.
        options["metadata"] = {"axes": "ZYXS", "spacing": z, "unit": ij_unit}
        data = data[..., np.newaxis]

    def write(target: Path) -> None:
        tifffile.imwrite(target, data, **options)

    atomic_write(out, write)
