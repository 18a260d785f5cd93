"""Read a Zarr array, one array of a group, or an OME-Zarr image (zarr is imported lazily).

With ``lazy=True`` the voxels stay on disk: the result holds the opened ``zarr.Array``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_emseg.io.datasets import choose_one, layer_name, path_words, scale_from_attrs
from napari_emseg.io.units import all_positive, nm_per_unit, scale_in_nm
from napari_emseg.io.volume import InputError, RawRead, short_error, unreadable_error


def read_zarr(path: Path, inner: str | None, *, lazy: bool = False) -> RawRead:
    """Read array ``inner`` of the store, or the one image a group (or OME-Zarr image) holds."""
    import zarr  # works with the zarr 2 and zarr 3 APIs: open, arrays(), groups(), attrs

    try:
        root = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise InputError(
            f"{path} is not a readable Zarr store ({short_error(exc)}): check that it is a Zarr "
            "array or group folder"
        ) from exc
    try:
        return _read_open(root, path, inner, lazy)
    except InputError:
        raise
    except Exception as exc:
        # Damaged metadata (attributes, OME-Zarr multiscales) fails while the store is walked.
        raise unreadable_error(path, "Zarr store", short_error(exc)) from exc


def _read_open(root: Any, path: Path, inner: str | None, lazy: bool) -> RawRead:
    """The body of :func:`read_zarr` for an opened store."""
    import zarr

    node: Any = root
    where = ""
    key = (inner or "/").strip("/")
    if key:
        if isinstance(root, zarr.Array):
            raise InputError(f"{path} is a single Zarr array: pass {path} without ':{inner}'")
        try:
            node = root[key]
        except Exception as exc:
            names = ", ".join(p for p, _ in _zarr_arrays(root)[:8]) or "none"
            raise InputError(
                f"{path} has no array or group '/{key}' (arrays: {names}): fix the path after ':'"
            ) from exc
        where = f":/{key}"
    auto = not isinstance(node, zarr.Array)
    scale = None
    array_path = key
    if auto:
        multiscale = _ome_multiscale(node.attrs)
        label_names = _label_names(node)
        if multiscale is None and label_names:  # labels without their image: read the first
            key = f"{key}/labels/{label_names[0]}".strip("/")
            node = node["labels"][label_names[0]]
            multiscale = _ome_multiscale(node.attrs)
        if multiscale is not None:
            sub, scale = multiscale
        else:
            sub = choose_one(path, _zarr_arrays(node), where).lstrip("/")
        array_path = f"{key}/{sub}".strip("/")
        try:
            node = node[sub]
        except Exception as exc:
            raise InputError(
                f"{path}{where} names a dataset '{sub}' that is missing: the store is incomplete"
            ) from exc
    try:
        if lazy and node.size > 0:
            node[(0,) * node.ndim]  # decode one chunk now, so a damaged store is reported here
            data = node
        else:
            data = np.asarray(node[...])
    except MemoryError as exc:
        raise InputError(f"{path} is too large to read into memory: crop it first") from exc
    except Exception as exc:
        raise unreadable_error(path, "Zarr array", short_error(exc)) from exc
    if scale is None:
        scale = scale_from_attrs(dict(node.attrs), data.shape)
    return RawRead(
        data=data,
        scale=scale,
        names=path_words(array_path),
        name=layer_name(path, array_path, not key),
    )


def _label_names(group: Any) -> list[str]:
    """The NGFF image-labels an OME-Zarr image lists in its ``labels`` group."""
    try:
        names = dict(group["labels"].attrs).get("labels") or []
    except Exception:  # no labels group: an ordinary store
        return []
    return [str(n) for n in names if isinstance(n, str)]


def ome_pyramids(path: Path) -> list[tuple[str, bool, list[Any], tuple[float, ...] | None]]:
    """Every multiscale image of an OME-Zarr store and its labels, for napari: (name, is
    labels, the levels from full resolution down, voxel size in nm or None). Empty when the
    store is not OME-Zarr."""
    import zarr

    try:
        root = zarr.open(str(path), mode="r")
    except Exception:
        return []
    if isinstance(root, zarr.Array):
        return []
    found = []
    try:
        named = [(path.name.split(".")[0], False, root)]
        named += [(n, True, root["labels"][n]) for n in _label_names(root)]
        for name, is_labels, group in named:
            attrs = dict(group.attrs)
            multiscale = _ome_multiscale(attrs)
            if multiscale is None:
                continue
            meta = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
            levels = [group[d["path"]] for d in meta[0]["datasets"]]
            for level in levels:  # decode one chunk of each now: damage is found here
                level[(0,) * level.ndim]
            if len({level.ndim for level in levels}) != 1:
                return []
            found.append((name, is_labels, levels, multiscale[1]))
    except Exception:  # damaged or unusual: the single-array reader explains what is wrong
        return []
    return found


def _zarr_arrays(group: Any, prefix: str = "") -> list[tuple[str, tuple[int, ...]]]:
    found = [(f"{prefix}/{name}", tuple(arr.shape)) for name, arr in group.arrays()]
    for name, sub in group.groups():
        found.extend(_zarr_arrays(sub, f"{prefix}/{name}"))
    return sorted(found)


def _ome_multiscale(
    attrs: Mapping[str, Any],
) -> tuple[str, tuple[float, float, float] | None] | None:
    """(path of the full-resolution array, its voxel size in nm or None) of an OME-Zarr image.

    Examples
    --------
    >>> _ome_multiscale({"multiscales": [{
    ...     "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
    ...     "datasets": [{"path": "0", "coordinateTransformations": [
    ...         {"type": "scale", "scale": [0.05, 0.004, 0.004]}]}]}]})
    ('0', (50.0, 4.0, 4.0))
    """
    attrs = dict(attrs)
    multiscales = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    if not multiscales or not isinstance(multiscales, list):
        return None
    image = multiscales[0]
    if not isinstance(image, dict):
        return None
    datasets = image.get("datasets") or []
    if not datasets or "path" not in datasets[0]:
        return None
    axes = image.get("axes") or []
    ndim = len(axes)
    scale = [1.0] * ndim
    # The dataset's own transform times the optional image-wide one (OME-NGFF 0.4/0.5).
    transforms = [
        *(datasets[0].get("coordinateTransformations") or []),
        *(image.get("coordinateTransformations") or []),
    ]
    for t in transforms:
        if t.get("type") == "scale" and len(t.get("scale", [])) == ndim:
            scale = [a * float(b) for a, b in zip(scale, t["scale"], strict=True)]
    spatial = []
    for axis, size in zip(axes, scale, strict=True):
        name, kind, unit = (
            (axis.get("name"), axis.get("type"), axis.get("unit"))
            if isinstance(axis, dict)
            else (axis, None, None)
        )
        if kind == "space" or (kind is None and name in ("z", "y", "x")):
            spatial.append((size, nm_per_unit(unit)))
    factors = {f for _, f in spatial}
    if len(spatial) not in (2, 3) or None in factors:
        return str(datasets[0]["path"]), None
    sizes = [s * f for s, f in spatial]  # type: ignore[operator]
    z = sizes[0] if len(sizes) == 3 else None
    nm = scale_in_nm(z, sizes[-2], sizes[-1], 1.0)
    return str(datasets[0]["path"]), nm if all_positive(nm) else None
