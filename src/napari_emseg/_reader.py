"""npe2 reader hook: napari opens EM stacks through :func:`napari_emseg.io.read_volume`.

Thin by design: all format logic lives in :mod:`napari_emseg.io`. No napari import here, so npe2
can import this module cheaply.

Inputs larger than :data:`napari_emseg.io.lazy.LAZY_ABOVE_BYTES` (1 GiB) stay on disk: napari
gets the dask array (Zarr, HDF5) or memory map (uncompressed TIFF) and reads only the slices it
shows, so volumes larger than memory open. Smaller inputs are read into memory, where labels can
be painted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_emseg.io import Volume, is_supported_path, lazy, read_volume

__all__ = ["get_reader"]

PathLike = str | os.PathLike[str]
#: ``(data, layer keyword arguments, layer type)`` as napari expects from a reader.
LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[PathLike | Sequence[PathLike]], list[LayerData]]


def get_reader(path: PathLike | Sequence[PathLike]) -> ReaderFunction | None:
    """Return a reader for ``path`` (or every path of a list), or None to let napari try others.

    Parameters
    ----------
    path : str or list of str
        What napari asks about: one path, or several dropped at once.

    Returns
    -------
    callable or None
        ``reader(path) -> list[LayerData]`` with one ``(data, kwargs, "image" | "labels")`` per
        path, or None when a path is not a supported form (checked by extension only).

    Examples
    --------
    >>> get_reader("notes.txt") is None
    True
    >>> callable(get_reader("stack.tif"))
    True
    """
    paths = _as_list(path)
    if not paths or not all(is_supported_path(p) for p in paths):
        return None
    return read_layers


def read_layers(path: PathLike | Sequence[PathLike]) -> list[LayerData]:
    """Read every path into napari LayerData; problems raise ``InputError`` (one-line message).

    Data above :data:`~napari_emseg.io.lazy.LAZY_ABOVE_BYTES` is passed lazily (dask array or
    memory map); smaller data as an in-memory numpy array.

    Examples
    --------
    >>> [(kwargs["name"], kind) for _, kwargs, kind in read_layers("seg.tif")]  # doctest: +SKIP
    [('seg', 'labels')]
    """
    layers = []
    for one in _as_list(path):
        pyramids = _ome_pyramids(one)
        layers += pyramids if pyramids else [layer_data(_read(one))]
    return layers


def _ome_pyramids(path: PathLike) -> list[LayerData]:
    """An OME-Zarr image with its labels, every resolution level of each (napari shows the
    level that fits the screen); empty for anything else."""
    from napari_emseg.io.zarr_reader import ome_pyramids

    spec = Path(os.fspath(path))
    if spec.suffix.lower() != ".zarr" or not spec.is_dir():
        return []
    found = ome_pyramids(spec)
    if not found or (len(found) == 1 and len(found[0][2]) == 1):
        return []  # one level of one image: the ordinary reader checks and names it
    layers = []
    for name, is_labels, levels, scale in found:
        space = physical_space(scale or (1.0, 1.0, 1.0), "nm" if scale else "pixel")
        kwargs = {"name": name, "multiscale": len(levels) > 1, **space}
        data = levels if len(levels) > 1 else levels[0]
        layers.append((data, kwargs, "labels" if is_labels else "image"))
    return layers


def _read(path: PathLike) -> Volume:
    volume = read_volume(path, lazy=True)  # opens the file; reads voxels only where it must
    if not lazy.is_lazy(volume.data) or lazy.nbytes(volume.data) > lazy.LAZY_ABOVE_BYTES:
        return volume
    return read_volume(path)  # small: in memory, every chunk checked now


def layer_data(volume: Volume) -> LayerData:
    """Turn a :class:`~napari_emseg.io.Volume` into a napari ``(data, kwargs, layer_type)``."""
    kwargs = {"name": volume.name, **physical_space(volume.scale, volume.unit)}
    return volume.data, kwargs, "labels" if volume.is_labels else "image"


def physical_space(scale: tuple[float, ...], unit: str) -> dict:
    """A layer's voxel size, units and axis names, as napari takes them.

    Examples
    --------
    >>> physical_space((50.0, 4.0, 4.0), "nm")["units"]
    ('nm', 'nm', 'nm')
    """
    units = ("nm",) * len(scale) if unit == "nm" else ("pixel",) * len(scale)
    return {
        "scale": tuple(scale),
        "units": units,
        "axis_labels": ("z", "y", "x")[-len(scale) :],
        "metadata": {"unit": unit},
    }


def _as_list(path: PathLike | Sequence[PathLike]) -> list[PathLike]:
    if isinstance(path, (str, os.PathLike)):
        return [path]
    return list(path)
