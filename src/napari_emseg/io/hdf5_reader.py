"""Read one 2D/3D dataset from an HDF5 file (h5py is imported only when one is opened).

With ``lazy=True`` the file stays open and the result holds the ``h5py.Dataset``; the file
closes when the dataset is garbage-collected.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from napari_emseg.io.datasets import choose_one, layer_name, path_words, scale_from_attrs
from napari_emseg.io.volume import InputError, RawRead, short_error, unreadable_error


def read_hdf5(path: Path, inner: str | None, *, lazy: bool = False) -> RawRead:
    """Read dataset ``inner``, or the only image dataset in the file or group it names."""
    import h5py

    with suppress(ImportError):  # registers extra filters (blosc, lz4, zstd) when installed
        import hdf5plugin  # noqa: F401
    try:
        handle = h5py.File(path, "r")
    except Exception as exc:
        raise unreadable_error(path, "HDF5 file", short_error(exc)) from exc
    try:
        raw = _read_open(handle, path, inner, lazy)
    except InputError:
        handle.close()
        raise
    except Exception as exc:
        handle.close()
        # A damaged file often opens, then fails while its groups or attributes are read.
        raise unreadable_error(path, "HDF5 file", short_error(exc)) from exc
    if isinstance(raw.data, np.ndarray):  # read: the file is no longer needed
        handle.close()
    return raw


def _read_open(handle: Any, path: Path, inner: str | None, lazy: bool) -> RawRead:
    """The body of :func:`read_hdf5` for an open file."""
    import h5py

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
        node = handle[choose_one(path, _h5_datasets(node), where)]
    try:
        if lazy and node.ndim >= 2 and node.size > 0:
            node[(0,) * node.ndim]  # decode one chunk now, so a missing filter is reported here
            data = node
        else:
            data = np.asarray(node[()])
    except MemoryError as exc:
        raise InputError(
            f"{path}:{node.name} is too large to read into memory: crop it first"
        ) from exc
    except Exception as exc:
        detail = short_error(exc)
        if "filter" in detail.lower():
            raise InputError(
                f"{path}:{node.name} uses a compression filter that is not installed "
                f"({detail}): pip install hdf5plugin"
            ) from exc
        raise unreadable_error(path, "HDF5 dataset", detail) from exc
    scale = scale_from_attrs(node.attrs, data.shape)
    name = node.name
    return RawRead(
        data=data,
        scale=scale,
        names=path_words(name),
        name=layer_name(path, name, auto and inner in (None, "/")),
    )


def _h5_datasets(group: Any) -> list[tuple[str, tuple[int, ...]]]:
    import h5py

    found: list[tuple[str, tuple[int, ...]]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            found.append((obj.name, tuple(obj.shape)))

    group.visititems(visit)
    return found
