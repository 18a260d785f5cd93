"""Export a proofread segmentation: a per-object CSV table and an OME-Zarr image.

Both writes are all-or-nothing: the CSV goes through :func:`napari_emseg.io.atomic.atomic_write`,
the Zarr store is written to a hidden folder beside the target and renamed into place, so an
interrupted export never leaves a half-written file where a reader would find it.
"""

from __future__ import annotations

import csv
import os
import shutil
import uuid
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import numpy as np

from napari_emseg.io import InputError
from napari_emseg.io.atomic import atomic_write
from napari_emseg.io.units import nm_per_unit
from napari_emseg.io.volume import short_error
from napari_emseg.io.write_checks import check_scale, labels_for_tiff
from napari_emseg.proofreading.edits import object_table

CSV_COLUMNS = (
    "id",
    "voxels",
    "volume_nm3",
    "z_first",
    "z_last",
    "z0",
    "y0",
    "x0",
    "z1",
    "y1",
    "x1",
)
# OME-NGFF 0.4 wants UDUNITS-2 names; any spelling nm_per_unit knows is mapped onto them.
_OME_UNITS = {
    1e-3: "picometer",
    0.1: "angstrom",
    1.0: "nanometer",
    1e3: "micrometer",
    1e6: "millimeter",
    1e7: "centimeter",
    1e9: "meter",
}


def _output_path(path: str | os.PathLike[str], suffixes: tuple[str, ...], overwrite: bool) -> Path:
    out = Path(os.path.expanduser(os.fspath(path)))
    if out.suffix.lower() not in suffixes:
        raise InputError(f"{out} must end in {' or '.join(suffixes)}")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; pass overwrite=True / --overwrite to replace it")
    if not out.parent.is_dir():
        raise InputError(f"output folder {out.parent} does not exist: create it or choose another")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise InputError(f"output folder {out.parent} is not writable: choose another folder")
    return out


def write_object_csv(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    *,
    scale: Sequence[float] = (1.0, 1.0, 1.0),
    overwrite: bool = False,
) -> Path:
    """Write one row per object: id, voxels, volume in nm^3, z range and half-open box.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv`` file; an existing one is replaced only with ``overwrite``.
    labels : ndarray of int, shape (Z, Y, X)
    scale : sequence of float
        Voxel size (z, y, x) in nm.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        The file exists (and not ``overwrite``), or the folder is missing or read-only.

    Examples
    --------
    >>> labels = np.zeros((2, 4, 4), np.uint16); labels[:, 1:3, 1:3] = 7
    >>> out = write_object_csv("objects.csv", labels, scale=(50, 4, 4))  # doctest: +SKIP
    >>> out.read_text().splitlines()[1]  # doctest: +SKIP
    '7,8,6400.0,0,1,0,1,1,2,3,3'
    """
    out = _output_path(path, (".csv",), overwrite)
    if out.is_dir():
        raise InputError(f"{out} is a folder: give a file name ending in .csv")
    sizes = check_scale(scale)
    voxel_nm3 = float(np.prod(sizes))
    rows = [
        (e.id, e.voxels, e.voxels * voxel_nm3, *e.z_range, *e.bbox)
        for e in object_table(np.asarray(labels))
    ]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            writer.writerows(rows)

    atomic_write(out, write)
    return out


def _ome_unit(unit: str) -> str:
    factor = nm_per_unit(unit)
    name = None if factor is None else _OME_UNITS.get(factor)
    if name is None:
        raise InputError(
            f"unit {unit!r} is not a length OME-Zarr knows: use nanometer, micrometer, ..."
        )
    return name


def _multiscales(name: str, scale: tuple[float, float, float], unit: str) -> list[dict]:
    return [
        {
            "version": "0.4",
            "name": name,
            "axes": [{"name": axis, "type": "space", "unit": unit} for axis in "zyx"],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [*scale]}]}
            ],
        }
    ]


def write_ome_zarr(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    *,
    scale: Sequence[float],
    unit: str = "nanometer",
    overwrite: bool = False,
    chunks: tuple[int, int, int] = (1, 256, 256),
) -> Path:
    """Write labels as an OME-Zarr 0.4 image (one resolution level, axes z/y/x with units).

    The store is Zarr format 2 (what OME-NGFF 0.4 readers such as Fiji's expect), Blosc-zstd
    compressed, with ``/``-separated chunk keys; ids are uint16, or uint32 above 65535.

    Parameters
    ----------
    path : str or os.PathLike
        A folder ending in ``.zarr``; an existing one is replaced only with ``overwrite``.
    labels : ndarray of int, shape (Z, Y, X)
    scale : sequence of float
        Voxel size (z, y, x) in ``unit``.
    unit : str
        Length unit of ``scale`` (``"nanometer"``, ``"nm"``, ``"micrometer"``, ``"um"``...).
    chunks : (int, int, int)
        Chunk shape; clipped to the array shape.

    Returns
    -------
    Path
        The store written.

    Raises
    ------
    InputError
        The folder exists (and not ``overwrite``), the parent is missing or read-only, the
        unit is unknown or the ids do not fit uint32.

    Examples
    --------
    >>> labels = np.zeros((2, 64, 64), np.uint32); labels[:, 8:20, 8:20] = 3
    >>> out = write_ome_zarr("seg.ome.zarr", labels, scale=(50, 4, 4))  # doctest: +SKIP
    >>> read_volume(out, as_labels=True).scale  # doctest: +SKIP
    (50.0, 4.0, 4.0)
    """
    out = _output_path(path, (".zarr",), overwrite)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a Zarr folder: choose another name")
    data = labels_for_tiff(labels)  # same checks and dtype choice as the TIFF export
    sizes = check_scale(scale)
    ome_unit = _ome_unit(unit)
    chunk_shape = tuple(max(1, min(int(c), n)) for c, n in zip(chunks, data.shape, strict=True))
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        _write_store(tmp, data, chunk_shape, _multiscales(out.name, sizes, ome_unit))
        _replace_folder(tmp, out)
    except OSError as exc:
        raise InputError(
            f"cannot write {out} ({short_error(exc)}): check free space and permissions"
        ) from exc
    finally:
        with suppress(OSError):
            shutil.rmtree(tmp)  # only left over when writing failed
    return out


def _write_store(
    folder: Path, data: np.ndarray, chunks: tuple[int, ...], multiscales: list[dict]
) -> None:
    import zarr
    from numcodecs import Blosc

    compressor = Blosc(cname="zstd", clevel=5, shuffle=Blosc.BITSHUFFLE)
    if int(zarr.__version__.split(".")[0]) >= 3:
        group = zarr.open_group(str(folder), mode="w-", zarr_format=2)
        array = group.create_array(
            "0",
            shape=data.shape,
            chunks=chunks,
            dtype=data.dtype,
            compressors=compressor,
            chunk_key_encoding={"name": "v2", "separator": "/"},
            fill_value=0,
        )
    else:  # zarr 2 writes format 2 only
        group = zarr.open_group(str(folder), mode="w-")
        array = group.create_dataset(
            "0",
            shape=data.shape,
            chunks=chunks,
            dtype=data.dtype,
            compressor=compressor,
            dimension_separator="/",
            fill_value=0,
        )
    array[...] = data
    group.attrs["multiscales"] = multiscales


def _replace_folder(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``; an old ``out`` is set aside first and removed only after."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old, out)  # put the previous store back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
