"""OME-Zarr 0.4 images written chunk by chunk: create the store, fill it, move it into place.

Used by the proofreading export (a whole array at once) and by blockwise segmentation, whose
blocks write their own chunks, possibly from several processes (each chunk has one writer). A
store is built in a hidden ``.NAME.<random>.partial`` folder beside the target and renamed into
place when complete, so a reader never finds a half-written store under the target name.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_emseg.io.units import nm_per_unit
from napari_emseg.io.volume import InputError
from napari_emseg.io.write_checks import check_output_path


def _zarr_major() -> int:
    from importlib.metadata import version

    return int(version("zarr").split(".")[0])


_ZARR_MAJOR = _zarr_major()  # read from metadata: importing zarr here would slow start-up

# OME-NGFF 0.4 wants UDUNITS-2 names; any spelling nm_per_unit knows is mapped onto them.
OME_UNITS = {
    1e-3: "picometer",
    0.1: "angstrom",
    1.0: "nanometer",
    1e3: "micrometer",
    1e6: "millimeter",
    1e7: "centimeter",
    1e9: "meter",
}


def ome_unit(unit: str) -> str | None:
    """The OME-NGFF name of a length unit; None for ``"pixel"`` (no physical size known).

    Examples
    --------
    >>> ome_unit("nm"), ome_unit("um"), ome_unit("pixel")
    ('nanometer', 'micrometer', None)
    """
    if unit == "pixel":
        return None
    factor = nm_per_unit(unit)
    name = None if factor is None else OME_UNITS.get(factor)
    if name is None:
        raise InputError(
            f"unit {unit!r} is not a length OME-Zarr knows: use nanometer, micrometer, ..."
        )
    return name


def multiscales(name: str, scale: Sequence[float], unit: str | None) -> list[dict[str, Any]]:
    """The ``multiscales`` attribute of a one-level z/y/x image (axes without unit if None).

    Examples
    --------
    >>> multiscales("seg", (50, 4, 4), "nanometer")[0]["axes"][0]
    {'name': 'z', 'type': 'space', 'unit': 'nanometer'}
    """
    axes = [{"name": axis, "type": "space", **({"unit": unit} if unit else {})} for axis in "zyx"]
    transform = {"type": "scale", "scale": [float(s) for s in scale]}
    return [
        {
            "version": "0.4",
            "name": name,
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": [transform]}],
        }
    ]


def create_image(
    folder: Path,
    *,
    shape: tuple[int, ...],
    dtype: Any,
    chunks: tuple[int, ...],
    attrs: list[dict[str, Any]],
) -> Any:
    """Create a Zarr v2 group at ``folder`` holding an empty array ``0``; return the array.

    ``attrs`` is the ``multiscales`` list (see :func:`multiscales`); the array is made by
    :func:`new_array`, which is what OME-NGFF 0.4 readers (Fiji, napari-ome-zarr) expect.

    Examples
    --------
    >>> array = create_image(Path("seg.zarr"), shape=(2, 8, 8), dtype=np.uint32, chunks=(1, 8, 8),
    ...                      attrs=multiscales("seg", (1, 1, 1), None))  # doctest: +SKIP
    >>> array[0] = 7  # doctest: +SKIP
    """
    group = new_group(folder)
    array = new_array(group, "0", shape=shape, dtype=dtype, chunks=chunks)
    group.attrs["multiscales"] = attrs
    return array


def new_group(folder: Path) -> Any:
    """An empty Zarr format-2 group at ``folder`` (which must not exist)."""
    import zarr

    if _ZARR_MAJOR >= 3:
        return zarr.open_group(str(folder), mode="w-", zarr_format=2)
    return zarr.open_group(str(folder), mode="w-")  # zarr 2 writes format 2 only


def new_array(
    group: Any, name: str, *, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...]
) -> Any:
    """An empty array in ``group``: Blosc-zstd, ``/``-separated chunk keys, fill value 0.

    ``chunks`` is clipped to ``shape``. Arrays of one group may be created from several
    processes at once (format 2 keeps no list of children).
    """
    from numcodecs import Blosc

    compressor = Blosc(cname="zstd", clevel=5, shuffle=Blosc.BITSHUFFLE)
    chunks = tuple(max(1, min(int(c), n)) for c, n in zip(chunks, shape, strict=True))
    if _ZARR_MAJOR >= 3:
        return group.create_array(
            name,
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            compressors=compressor,
            chunk_key_encoding={"name": "v2", "separator": "/"},
            fill_value=0,
        )
    return group.create_dataset(
        name,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        compressor=compressor,
        dimension_separator="/",
        fill_value=0,
    )


def open_group(folder: str | os.PathLike[str], mode: str = "r+") -> Any:
    """An existing Zarr group."""
    import zarr

    return zarr.open_group(str(folder), mode=mode)


def open_level(folder: str | os.PathLike[str], mode: str = "r+") -> Any:
    """The full-resolution array ``0`` of an image made by :func:`create_image`."""
    import zarr

    return zarr.open_array(str(Path(folder) / "0"), mode=mode)


def check_zarr_output(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """A ``.zarr`` folder path that may be written: refuse files, existing stores, bad parents.

    Examples
    --------
    >>> check_zarr_output("labels.tif", False)
    Traceback (most recent call last):
    ...
    napari_emseg.io.volume.InputError: labels.tif must end in .zarr
    """
    return check_output_path(path, overwrite, suffixes=(".zarr",), folder=True)


def partial_path(out: Path, kind: str = "partial") -> Path:
    """A hidden sibling of ``out`` to build it in (``.NAME.<random>.partial``)."""
    return out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.{kind}")


def replace_folder(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``; an old ``out`` is set aside first and removed only after."""
    old = None
    if out.exists():
        old = partial_path(out, "old")
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old, out)  # put the previous store back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
