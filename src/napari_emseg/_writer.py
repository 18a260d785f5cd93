"""npe2 writer hook: napari saves Labels layers with :func:`napari_emseg.io.write_labels_tiff`.

Thin by design; no napari import here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_emseg.io import TIFF_SUFFIXES, write_labels_tiff

__all__ = ["write_labels"]


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a napari Labels layer as a Fiji-compatible TIFF and return ``[written path]``.

    napari's save dialog already asked before replacing a file, so an existing file is
    overwritten here (still atomically: a failed write leaves the old file intact). A path
    without a ``.tif``/``.tiff`` extension gets ``.tif`` appended.

    Parameters
    ----------
    path : str
        Target file chosen in napari.
    data : array-like
        The layer data, (Z, Y, X) or (Y, X) integer ids.
    meta : dict
        The layer attributes; ``scale`` and ``metadata["unit"]`` (default ``"nm"``) are used.

    Returns
    -------
    list of str
        The one file written.

    Examples
    --------
    >>> import numpy as np
    >>> write_labels("seg", np.ones((2, 8, 8), np.uint16), {"scale": (50, 4, 4)})  # doctest: +SKIP
    ['seg.tif']
    """
    out = Path(path)
    if out.suffix.lower() not in TIFF_SUFFIXES:
        out = out.with_name(out.name + ".tif")
    scale = meta.get("scale")
    unit = (meta.get("metadata") or {}).get("unit", "nm")
    written = write_labels_tiff(
        out,
        data,
        scale=(1.0, 1.0, 1.0) if scale is None else scale,
        unit=unit,
        overwrite=True,
    )
    return [str(written)]
