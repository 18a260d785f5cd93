"""OME-NGFF 0.4 stores written with zarr alone: an image and its labels, each a pyramid.

The layout every NGFF reader knows (napari-ome-zarr, Fiji, neuroglancer, ome-zarr-py)::

    out.zarr/                the image, when given: "multiscales", levels 0, 1, ...
    out.zarr/labels/         {"labels": [NAME]}
    out.zarr/labels/NAME/    the label image: "multiscales" + "image-label", levels 0, 1, ...

Levels halve y and x (z stays: EM sections are thick) until the plane is under 256 pixels.
Labels keep every other voxel (ids are never mixed); images take the mean of 2x2 pixels, and
each level's translation says where its pixel centres lie. Levels are made one z slab at a time
from anything that slices into numpy (an array, a Zarr array, a
:class:`~napari_emseg.io.lazy.DiskArray`), so memory is set by a slab, not by the volume.
No ome-zarr-py (and its cloud stack) is needed to write, and a store is built in a hidden
folder beside the target and moved into place only when complete.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from napari_emseg.io.ome_zarr import (
    check_zarr_output,
    new_array,
    new_group,
    ome_unit,
    open_group,
    partial_path,
    replace_folder,
)
from napari_emseg.io.volume import InputError, short_error
from napari_emseg.io.write_checks import check_scale, image_for_tiff, labels_for_tiff

NGFF_VERSION = "0.4"
SMALLEST_LEVEL = 256  # no level whose larger in-plane side would fall below this
DEFAULT_CHUNKS = (1, 256, 256)
LABELS_NAME = "labels"


def level_factors(shape: Sequence[int], *, smallest: int = SMALLEST_LEVEL) -> list[int]:
    """In-plane downsampling of every level, full resolution (1) first.

    Examples
    --------
    >>> level_factors((30, 1024, 1024))
    [1, 2, 4]
    >>> level_factors((3, 100, 100))
    [1]
    """
    factors = [1]
    while max(shape[-2:]) // (factors[-1] * 2) >= smallest:
        factors.append(factors[-1] * 2)
    return factors


def level_shape(shape: Sequence[int], factor: int) -> tuple[int, int, int]:
    """The shape of the level downsampled in y and x by ``factor`` (sizes rounded up).

    Examples
    --------
    >>> level_shape((3, 601, 520), 2)
    (3, 301, 260)
    """
    z, y, x = (int(n) for n in shape)
    return z, -(-y // factor), -(-x // factor)


def multiscales(
    name: str,
    scale: Sequence[float],
    unit: str | None,
    factors: Sequence[int],
    *,
    labels: bool,
) -> list[dict[str, Any]]:
    """The ``multiscales`` attribute of a z/y/x pyramid (axes without a unit when None).

    Label levels keep voxel 0 of every 2x2 block, so their grid starts where level 0 starts;
    image levels average the block, so their pixel centres sit half a block in.

    Examples
    --------
    >>> meta = multiscales("seg", (50, 4, 4), "nanometer", [1, 2], labels=False)[0]
    >>> meta["datasets"][1]["coordinateTransformations"]
    [{'type': 'scale', 'scale': [50.0, 8.0, 8.0]}, {'type': 'translation', 'translation': [0.0, 2.0, 2.0]}]
    """  # noqa: E501
    z, y, x = (float(s) for s in scale)
    axes = [{"name": axis, "type": "space", **({"unit": unit} if unit else {})} for axis in "zyx"]
    datasets = []
    for level, factor in enumerate(factors):
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [z, y * factor, x * factor]}]
        if not labels and factor > 1:
            shift = (factor - 1) / 2
            transforms.append({"type": "translation", "translation": [0.0, y * shift, x * shift]})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    return [{"version": NGFF_VERSION, "name": name, "axes": axes, "datasets": datasets}]


def halve(plane_stack: np.ndarray, *, labels: bool) -> np.ndarray:
    """One level down: y and x halved, by taking every other voxel (labels) or by the mean of
    2x2 pixels (images; an odd edge is repeated, integers are rounded back).

    Examples
    --------
    >>> halve(np.arange(16).reshape(1, 4, 4), labels=True)[0].tolist()
    [[0, 2], [8, 10]]
    >>> halve(np.arange(16, dtype=np.uint8).reshape(1, 4, 4), labels=False)[0].tolist()
    [[2, 4], [10, 12]]
    """
    if labels:
        return np.ascontiguousarray(plane_stack[:, ::2, ::2])
    z, y, x = plane_stack.shape
    padded = np.pad(plane_stack, ((0, 0), (0, y % 2), (0, x % 2)), mode="edge")
    blocks = padded.reshape(z, (y + 1) // 2, 2, (x + 1) // 2, 2).astype(np.float64)
    mean = blocks.mean(axis=(2, 4))
    if plane_stack.dtype.kind in "iu":
        info = np.iinfo(plane_stack.dtype)
        mean = np.clip(np.rint(mean), info.min, info.max)
    return mean.astype(plane_stack.dtype)


def write_pyramid(
    group: Any,
    source: Any,
    *,
    labels: bool,
    chunks: Sequence[int] = DEFAULT_CHUNKS,
    factors: Sequence[int] | None = None,
    first: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[int]:
    """Write the levels ``first, first + 1, ...`` of ``source`` into ``group`` as arrays
    ``"0"``, ``"1"``, ...; returns the factors of all levels.

    ``source`` is level 0 (Z, Y, X): anything that slices into numpy. With ``first=1`` level 0
    is already in the group (e.g. moved there) and only the smaller levels are made.

    Examples
    --------
    >>> group = new_group(Path("map.zarr"))  # doctest: +SKIP
    >>> write_pyramid(group, np.zeros((2, 600, 600), np.float32), labels=False)  # doctest: +SKIP
    [1, 2]
    """
    shape = tuple(int(n) for n in source.shape)
    factors = list(factors or level_factors(shape))
    dtype = np.dtype(source.dtype)
    arrays = {
        level: new_array(
            group, str(level), shape=level_shape(shape, f), dtype=dtype, chunks=tuple(chunks)
        )
        for level, f in enumerate(factors)
        if level >= first
    }
    if not arrays:
        return factors
    step = max(1, int(chunks[0]))
    for z0 in range(0, shape[0], step):
        slab = np.asarray(source[z0 : z0 + step])
        for level in range(len(factors)):
            if level > 0:
                slab = halve(slab, labels=labels)
            if level in arrays:
                arrays[level][z0 : z0 + slab.shape[0]] = slab
        if progress is not None:
            progress(min(z0 + step, shape[0]), shape[0], "pyramid")
    return factors


def add_image(
    group: Any,
    data: Any,
    *,
    name: str,
    scale: Sequence[float],
    unit: str | None,
    labels: bool = False,
    beside_image: bool = False,
    chunks: Sequence[int] = DEFAULT_CHUNKS,
    progress: Callable[[int, int, str], None] | None = None,
) -> None:
    """Write ``data`` into ``group`` as an NGFF multiscale image, or as an image-label with
    ``labels`` (``beside_image``: its source is the image two levels up, as in
    :func:`write_ngff`). ``unit`` is an OME name (``"nanometer"``) or None when unknown.

    Examples
    --------
    >>> add_image(new_group(Path("em.zarr")), stack, name="em", scale=(50, 4, 4),
    ...           unit="nanometer")  # doctest: +SKIP
    """
    factors = write_pyramid(group, data, labels=labels, chunks=chunks, progress=progress)
    set_attrs(group, name, scale, unit, factors, labels=labels, beside_image=beside_image)


def set_attrs(
    group: Any,
    name: str,
    scale: Sequence[float],
    unit: str | None,
    factors: Sequence[int],
    *,
    labels: bool,
    beside_image: bool = False,
) -> None:
    """Write the NGFF attributes of a pyramid: ``multiscales``, and ``image-label`` for labels.

    Examples
    --------
    >>> set_attrs(group, "cells", (50, 4, 4), "nanometer", [1, 2], labels=True)  # doctest: +SKIP
    """
    group.attrs["multiscales"] = multiscales(name, scale, unit, factors, labels=labels)
    if labels:
        label: dict[str, Any] = {"version": NGFF_VERSION}
        if beside_image:
            label["source"] = {"image": "../../"}
        group.attrs["image-label"] = label


def labels_group(root: Any, name: str) -> Any:
    """The group ``labels/NAME`` of ``root``, registered in ``labels/.zattrs``.

    Examples
    --------
    >>> labels_group(new_group(Path("em.zarr")), "cells").path  # doctest: +SKIP
    'labels/cells'
    """
    group = root.require_group("labels")
    names = [n for n in dict(group.attrs).get("labels", []) if n != name]
    group.attrs["labels"] = [*names, name]
    return group.create_group(name)


def write_ngff(
    path: str | os.PathLike[str],
    *,
    labels: Any = None,
    image: Any = None,
    scale: Sequence[float] = (1.0, 1.0, 1.0),
    unit: str = "nm",
    name: str = LABELS_NAME,
    image_name: str = "image",
    chunks: Sequence[int] = DEFAULT_CHUNKS,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Write an image and/or its labels as one OME-NGFF 0.4 store (Zarr format 2).

    ``image`` goes to the root as a multiscale image; ``labels`` to ``labels/NAME`` as an
    NGFF image-label. Either may be omitted (a store of labels alone has just ``labels/``; an
    NGFF reader opens ``OUT.zarr/labels/NAME``, napari-emseg reads ``OUT.zarr`` too). Ids are
    stored as uint16, or uint32 above 65535; grey data keep a type ImageJ knows (float64 becomes
    float32). Both may be numpy arrays or anything that slices into numpy.

    Parameters
    ----------
    path : str or os.PathLike
        A folder ending in ``.zarr``; an existing one is replaced only with ``overwrite``.
    labels, image : array-like (Z, Y, X), optional
        At least one; the same shape when both are given.
    scale : sequence of float
        Voxel size (z, y, x) in ``unit``.
    unit : str
        Length unit (``"nm"``, ``"nanometer"``, ``"um"``...), or ``"pixel"`` for none known.
    name, image_name : str
        Names of the label image and of the image.
    chunks : (int, int, int)
        Chunk shape of every level (clipped to the level).
    overwrite : bool
    progress : callable, optional
        ``progress(done, total, "pyramid")`` per slab.

    Returns
    -------
    Path
        The store written.

    Raises
    ------
    InputError
        The store exists (and not ``overwrite``), its folder is missing or read-only, the unit
        is no length, the shapes differ, the ids do not fit uint32, or writing fails (disk full).

    Examples
    --------
    >>> seg = np.zeros((2, 64, 64), np.uint32); seg[:, 8:20, 8:20] = 3
    >>> out = write_ngff("seg.zarr", labels=seg, scale=(50, 4, 4))  # doctest: +SKIP
    >>> read_volume("seg.zarr:labels/labels").scale  # doctest: +SKIP
    (50.0, 4.0, 4.0)
    """
    out = check_zarr_output(path, overwrite)
    if labels is None and image is None:
        raise InputError(f"nothing to write into {out}: give labels, an image or both")
    sizes = check_scale(scale)
    unit_name = ome_unit(unit)
    labels = _checked(labels, labels_for_tiff)
    image = _checked(image, image_for_tiff)
    if labels is not None and image is not None and tuple(labels.shape) != tuple(image.shape):
        raise InputError(f"image shape {tuple(image.shape)} and labels {labels.shape} differ")
    tmp = partial_path(out)
    try:
        root = new_group(tmp)
        options = {"scale": sizes, "unit": unit_name, "chunks": chunks, "progress": progress}
        if image is not None:
            add_image(root, image, name=image_name, **options)
        if labels is not None:
            group = labels_group(root, name)
            add_image(
                group, labels, name=name, labels=True, beside_image=image is not None, **options
            )
        replace_folder(tmp, out)
    except OSError as exc:
        raise InputError(
            f"cannot write {out} ({short_error(exc)}): check free space and permissions"
        ) from exc
    finally:
        with suppress(OSError):
            shutil.rmtree(tmp)  # only left over when writing failed
    return out


def _checked(data: Any, convert: Callable[[np.ndarray], np.ndarray]) -> Any:
    """In-memory data checked and converted like the TIFF writers'; on-disk data as it is."""
    if data is None or not isinstance(data, np.ndarray) or isinstance(data, np.memmap):
        return data
    return convert(data)


def labels_from_image_store(
    source: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    name: str = LABELS_NAME,
    image: Any = None,
    image_name: str = "image",
    chunks: Sequence[int] = DEFAULT_CHUNKS,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Turn a one-level OME-Zarr image of ids (the blockwise engine's output) into an NGFF
    store with the ids as the image-label ``labels/NAME`` (with its pyramid), and ``image``
    (slice-able, e.g. the input opened on disk) at the root when given.

    The full-resolution array is moved, not copied; ``source`` is removed. ``path`` must not
    exist (pass a hidden temporary and move it into place).

    Examples
    --------
    >>> segment_blockwise("em.zarr", ".scratch.zarr", model="ridge")  # doctest: +SKIP
    >>> labels_from_image_store(".scratch.zarr", "seg.zarr")  # doctest: +SKIP
    PosixPath('seg.zarr')
    """
    source, out = Path(source), Path(path)
    _, scale, unit = _one_level(open_group(source, mode="r"))
    root = new_group(out)
    if image is not None:
        add_image(root, image, name=image_name, scale=scale, unit=unit, chunks=chunks)
    group = labels_group(root, name)
    os.replace(source / "0", out / "labels" / name / "0")
    level0 = open_group(out / "labels" / name)["0"]
    factors = write_pyramid(
        group, level0, labels=True, chunks=level0.chunks, first=1, progress=progress
    )
    set_attrs(group, name, scale, unit, factors, labels=True, beside_image=image is not None)
    shutil.rmtree(source)
    return out


def add_levels(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Give a one-level OME-Zarr image (e.g. the blockwise membrane map) its pyramid, in place;
    ``name`` renames it.

    Examples
    --------
    >>> add_levels("membrane.zarr", name="membrane")  # doctest: +SKIP
    PosixPath('membrane.zarr')
    """
    out = Path(path)
    group = open_group(out)
    found, scale, unit = _one_level(group)
    level0 = group["0"]
    factors = write_pyramid(
        group, level0, labels=False, chunks=level0.chunks, first=1, progress=progress
    )
    set_attrs(group, name or found or out.stem, scale, unit, factors, labels=False)
    return out


def _one_level(group: Any) -> tuple[str, list[float], str | None]:
    """Name, scale and unit of a one-level image whose array is ``"0"`` (as
    :func:`napari_emseg.io.ome_zarr.create_image` makes them)."""
    meta = dict(group.attrs)["multiscales"][0]
    datasets = meta["datasets"]
    if len(datasets) != 1 or datasets[0]["path"] != "0":
        raise ValueError(f"expected one level named '0', found {[d['path'] for d in datasets]}")
    scale = next(
        t["scale"] for t in datasets[0]["coordinateTransformations"] if t["type"] == "scale"
    )
    return meta.get("name", ""), scale, meta["axes"][0].get("unit")
