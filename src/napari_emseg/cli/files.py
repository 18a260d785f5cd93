"""What the CLI reads and writes: the input stack, and each output as a TIFF or an OME-NGFF
store by its suffix, all outputs or none.

``.tif``/``.tiff``: an ImageJ hyperstack that Fiji opens with its voxel size. ``.zarr``: an
OME-NGFF 0.4 store, as the Proofread widget's export writes it: labels as an image-label pyramid
under ``labels/labels`` (the image at the root when asked), a grey map as its own multiscale
image. Every output of a command is written under a temporary name beside it and renamed into
place only once all were written (:class:`~napari_emseg.io.outputs.OutputSet`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIX = ".zarr"


def warn_if_2d(spec: str, volume: Any) -> None:
    """Say that a 2D input is taken as a stack of one slice."""
    if volume.data.shape[0] == 1:
        warnings.warn(
            f"{spec} holds one 2D image: it is treated as a one-slice stack (nothing to propagate)",
            UserWarning,
            stacklevel=2,
        )


def read_image(spec: str, voxel_size=None) -> Any:
    """The input stack, in memory, with ``--voxel-size`` applied (through the facade)."""
    from napari_emseg.pipeline import read_volume

    volume = read_volume(spec, as_labels=False, voxel_size=voxel_size)
    warn_if_2d(spec, volume)
    return volume


def check_output(path: str, overwrite: bool, *, zarr: bool = False) -> Path:
    """Refuse a bad output before any long computation (the writers check again)."""
    from napari_emseg.io.ome_zarr import check_zarr_output
    from napari_emseg.io.write_checks import check_output_path

    if zarr and Path(path).suffix.lower() == ZARR_SUFFIX:
        return check_zarr_output(path, overwrite)
    suffixes = (*TIFF_SUFFIXES, ZARR_SUFFIX) if zarr else TIFF_SUFFIXES
    return check_output_path(path, overwrite, suffixes=suffixes)


def is_zarr(path: Path | str | None) -> bool:
    return path is not None and Path(path).suffix.lower() == ZARR_SUFFIX


def _write(
    outputs: Any, path: Path, volume: Any, *, ngff: dict, tiff: tuple[Any, Any], progress=None
) -> None:
    """Write one output for ``path`` into a temporary of ``outputs``, in the volume's scale and
    unit: an OME-Zarr store from the ``write_ngff`` keywords ``ngff`` for a ``.zarr`` path, else
    a TIFF by ``tiff``, a ``(writer, array)`` pair."""
    from napari_emseg.io.ngff import write_ngff

    with outputs.writing(path) as target:
        if is_zarr(path):
            write_ngff(target, **ngff, scale=volume.scale, unit=volume.unit, progress=progress)
        else:
            writer, data = tiff
            writer(target, data, scale=volume.scale, unit=volume.unit)


def write_labels(
    outputs: Any, path: Path, labels: Any, volume: Any, *, image: Any = None, progress=None
) -> None:
    """Write ``labels`` for ``path`` into a temporary of ``outputs`` (an OME-Zarr store also
    holds the input ``image`` at its root when given; a TIFF holds the labels only)."""
    from napari_emseg.io import write_labels_tiff

    ngff = {"labels": labels, "image": image}
    _write(outputs, path, volume, ngff=ngff, tiff=(write_labels_tiff, labels), progress=progress)


def write_image(
    outputs: Any, path: Path, data: Any, volume: Any, *, name: str, progress=None
) -> None:
    """Write a grey map (membrane probabilities) for ``path``; ``name`` names it in OME-Zarr."""
    from napari_emseg.io import write_image_tiff

    ngff = {"image": data, "image_name": name}
    _write(outputs, path, volume, ngff=ngff, tiff=(write_image_tiff, data), progress=progress)
