"""Read 2D slice images (PNG, or TIFF pages) and stack a folder of them in natural order."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from napari_emseg.io.axes import to_zyx
from napari_emseg.io.spec import PNG_SUFFIXES, SLICE_SUFFIXES
from napari_emseg.io.tiff_reader import read_tiff
from napari_emseg.io.volume import InputError, RawRead, short_error, unreadable_error


def read_png(path: Path) -> RawRead:
    """Decode one PNG file (grey, grey+alpha, RGB or RGBA)."""
    import imagecodecs  # tifffile's codec package; decodes PNG without a plugin search

    try:
        data = imagecodecs.png_decode(path.read_bytes())
    except MemoryError as exc:
        raise InputError(f"{path} is too large to read into memory") from exc
    except Exception as exc:
        raise unreadable_error(path, "PNG", short_error(exc)) from exc
    axes = "YXS" if data.ndim == 3 else "YX"
    return RawRead(data=data, axes=axes)


def natural_key(path: Path) -> tuple[object, ...]:
    """Sort key that puts ``slice2`` before ``slice10``.

    ``re.split`` with a capture group alternates text and digit runs, always starting with text,
    so keys compare str with str and int with int.

    Examples
    --------
    >>> [p.name for p in sorted([Path("s10.tif"), Path("s2.tif")], key=natural_key)]
    ['s2.tif', 's10.tif']
    """
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def slice_files(folder: Path) -> list[Path]:
    """The slice images in ``folder``, naturally sorted."""
    # Hidden files include macOS "._slice.tif" resource forks, which are not images.
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in SLICE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=natural_key)


def _read_slice(path: Path) -> RawRead:
    if path.suffix.lower() in PNG_SUFFIXES:
        return read_png(path)
    return read_tiff(path, slice_file=True)


def read_slice_folder(folder: Path) -> RawRead:
    """Stack the 2D slices of ``folder``; all must share size and pixel type."""
    files = slice_files(folder)
    if not files:
        raise InputError(
            f"{folder} holds no .tif/.tiff/.png slices: put the 2D slices of one stack in this "
            "folder, or pass a stack file"
        )
    first = _read_slice(files[0])
    with warnings.catch_warnings(record=True) as caught:
        # One warning for the folder, not one per slice.
        warnings.simplefilter("always", UserWarning)
        plane = to_zyx(first.data, first.axes, files[0])
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
            current = to_zyx(raw.data, raw.axes, file)
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
            stacklevel=3,  # read_volume's caller
        )
    return RawRead(data=stack, axes="ZYX", scale=first.scale, marker=first.marker)


def _yx(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape[-2:]))
