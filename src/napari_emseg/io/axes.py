"""Bring a decoded array to (Z, Y, X): drop singletons, fold grey RGB, reject real channels.

The warnings' ``stacklevel`` values count frames through the call chain ``read_volume ->
finish_volume -> to_zyx -> rgb_to_grey``: adding a helper in between moves the line they blame.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from napari_emseg.io.volume import InputError


def to_zyx(data: np.ndarray, axes: str | None, path: Path) -> np.ndarray:
    """Squeeze singleton axes, turn grey-in-effect RGB into grey and return (Z, Y, X).

    Examples
    --------
    >>> to_zyx(np.zeros((1, 4, 5, 1)), None, Path("a.h5")).shape
    (1, 4, 5)
    >>> to_zyx(np.zeros((3, 4, 5)), "ZYX", Path("a.tif")).shape
    (3, 4, 5)
    >>> to_zyx(np.zeros((3, 1, 5)), "ZYX", Path("a.tif")).shape
    (3, 1, 5)
    """
    if data.ndim == 0 or data.size == 0 or 0 in data.shape:
        raise InputError(
            f"{path} has a zero-sized dimension (shape {data.shape}): it holds no image data; "
            "re-export it"
        )
    if axes is None or len(axes) != data.ndim:
        axes = "?" * data.ndim
    if axes == "SYX":
        # tifffile stores a plain 3- or 4-slice stack as planar RGB(A) unless told otherwise;
        # a planar sample axis is far more often z than colour in EM work.
        warnings.warn(
            f"{path.name} is stored as {data.shape[0]} planar samples; reading them as slices",
            UserWarning,
            stacklevel=5,
        )
        axes = "ZYX"
    if axes[-1] == "S":
        data, axes = rgb_to_grey(data, path), axes[:-1]
    # Named Y and X axes stay even at size 1: a 1-pixel-thin image is still Y by X, and
    # squeezing it would turn (3, 1, 5) into a (1, 3, 5) stack or a 1D "image".
    keep = [i for i, n in enumerate(data.shape) if n != 1 or axes[i] in ("Y", "X")]
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


def rgb_to_grey(data: np.ndarray, path: Path) -> np.ndarray:
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
