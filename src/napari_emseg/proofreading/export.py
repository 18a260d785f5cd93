"""Export a proofread segmentation: a per-object CSV table and an OME-Zarr image.

Both writes are all-or-nothing: the CSV goes through :func:`napari_emseg.io.atomic.atomic_write`,
the Zarr store (:func:`napari_emseg.io.ngff.write_ngff`, the CLI's writer too) is written to a
hidden folder beside the target and renamed into place, so an interrupted export never leaves a
half-written file where a reader would find it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_emseg.io import InputError
from napari_emseg.io.atomic import atomic_write
from napari_emseg.io.ngff import write_ngff
from napari_emseg.io.ome_zarr import ome_unit
from napari_emseg.io.write_checks import check_output_path, check_scale
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
    out = check_output_path(path, overwrite, suffixes=(".csv",))
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


def write_ome_zarr(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    *,
    scale: Sequence[float],
    unit: str = "nanometer",
    image: np.ndarray | None = None,
    name: str = "labels",
    overwrite: bool = False,
    chunks: tuple[int, int, int] = (1, 256, 256),
) -> Path:
    """Write labels as an OME-NGFF 0.4 image-label with a multiscale pyramid (the CLI's writer,
    :func:`napari_emseg.io.ngff.write_ngff`).

    The labels go to ``labels/<name>`` (an NGFF ``image-label``, levels keeping every other
    voxel in y and x until they are under 256 pixels); ``image``, when given, is the EM image
    they belong to, written at the root with its own pyramid, as NGFF readers (napari, Fiji,
    neuroglancer) expect. The store is Zarr format 2 with ``/``-separated chunk keys; ids are
    uint16, or uint32 above 65535.

    Parameters
    ----------
    path : str or os.PathLike
        A folder ending in ``.zarr``; an existing one is replaced only with ``overwrite``.
    labels : ndarray of int, shape (Z, Y, X)
    scale : sequence of float
        Voxel size (z, y, x) in ``unit``.
    unit : str
        Length unit of ``scale`` (``"nanometer"``, ``"nm"``, ``"micrometer"``, ``"um"``...).
    image : ndarray, shape (Z, Y, X), optional
        The image the labels segment.
    name : str
        The label image's name under ``labels/``.
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
        unit is unknown, the image does not match the labels or the ids do not fit uint32.

    Examples
    --------
    >>> labels = np.zeros((2, 64, 64), np.uint32); labels[:, 8:20, 8:20] = 3
    >>> out = write_ome_zarr("seg.ome.zarr", labels, scale=(50, 4, 4))  # doctest: +SKIP
    >>> read_volume(f"{out}:labels/labels", as_labels=True).scale  # doctest: +SKIP
    (50.0, 4.0, 4.0)
    """
    if ome_unit(unit) is None:  # a proofread export always has a physical size
        raise InputError(
            f"unit {unit!r} is not a length OME-Zarr knows: use nanometer, micrometer, ..."
        )
    return write_ngff(
        path,
        labels=labels,
        image=image,
        scale=scale,
        unit=unit,
        name=name,
        chunks=chunks,
        overwrite=overwrite,
    )
