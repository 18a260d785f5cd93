"""Shared by the HDF5 and Zarr readers: picking one dataset, naming it, finding its voxel size."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_emseg.io.units import all_positive, scale_in_nm
from napari_emseg.io.volume import InputError, file_stem


def scale_from_attrs(
    attrs: Mapping[str, Any], shape: tuple[int, ...]
) -> tuple[float, float, float] | None:
    """Voxel size in nm from ilastik (``element_size_um``) or CREMI-style attributes.

    Examples
    --------
    >>> scale_from_attrs({"resolution": [40, 4, 4]}, (10, 64, 64))
    (40.0, 4.0, 4.0)
    >>> scale_from_attrs({"element_size_um": [0.05, 0.004, 0.004, 1]}, (10, 64, 64, 1))
    (50.0, 4.0, 4.0)
    """
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
            scale = scale_in_nm(values[0], values[1], values[2], factor)
        elif len(values) == 2:
            scale = scale_in_nm(None, values[0], values[1], factor)
        else:
            continue
        if all_positive(scale):
            return scale
    return None


def path_words(inner: str) -> tuple[str, ...]:
    """The parts of a dataset path, e.g. ``("volumes", "labels")``."""
    return tuple(part for part in inner.split("/") if part)


def layer_name(path: Path, inner: str, auto: bool) -> str | None:
    """``stem-leaf`` for a dataset the user named, None (use the stem) for one found alone."""
    # A dataset the user named (or one of several) is part of the layer name; a lone one is not.
    if auto:
        return None
    leaf = path_words(inner)[-1] if path_words(inner) else ""
    return f"{file_stem(path)}-{leaf}" if leaf else None


def choose_one(path: Path, found: list[tuple[str, tuple[int, ...]]], where: str) -> str:
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
