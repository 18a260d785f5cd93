"""Read one 2D/3D dataset from an HDF5 file (h5py is imported only when one is opened)."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from napari_emseg.io.datasets import choose_one, layer_name, path_words, scale_from_attrs
from napari_emseg.io.volume import InputError, RawRead, short_error, unreadable_error


def read_hdf5(path: Path, inner: str | None) -> RawRead:
    """Read dataset ``inner``, or the only image dataset in the file or group it names."""
    import h5py

    with suppress(ImportError):  # registers extra filters (blosc, lz4, zstd) when installed
        import hdf5plugin  # noqa: F401
    try:
        handle = h5py.File(path, "r")
    except Exception as exc:
        raise unreadable_error(path, "HDF5 file", short_error(exc)) from exc
    with handle:
        try:
            return _read_open(handle, path, inner)
        except InputError:
            raise
        except Exception as exc:
            # A damaged file often opens, then fails while its groups or attributes are read.
            raise unreadable_error(path, "HDF5 file", short_error(exc)) from exc


def _read_open(handle: Any, path: Path, inner: str | None) -> RawRead:
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
