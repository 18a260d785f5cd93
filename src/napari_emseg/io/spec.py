"""Input specs: which paths napari-emseg reads, and ``"file.h5:/dataset"`` splitting."""

from __future__ import annotations

import os
import re
from pathlib import Path

from napari_emseg.io.volume import InputError

TIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIXES = (".png",)
SLICE_SUFFIXES = TIFF_SUFFIXES + PNG_SUFFIXES
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
ZARR_SUFFIXES = (".zarr",)
_ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")
SUPPORTED_FORMS = (
    "a .tif/.tiff stack, a folder of .tif/.png slices, file.h5 or file.h5:/dataset, "
    "store.zarr or store.zarr:/array"
)


def parse_input_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """Split ``"container:/inner/path"`` into the file path and the path inside it.

    An existing file or folder is taken whole, so a ``:`` inside an ordinary file name works.
    Otherwise the string is split at the first ``:`` whose left part exists or ends in an HDF5 or
    Zarr extension. The inner path is returned with one leading ``/``; ``"file.h5:/"`` gives
    ``"/"`` (the root group).

    Parameters
    ----------
    spec : str or os.PathLike
        ``"stack.tif"``, ``"file.h5:/group/ds"``, ``"store.zarr:/labels"``, ...

    Returns
    -------
    path : Path
        The file or folder on disk.
    inner : str or None
        The path inside an HDF5 file or Zarr store, or None.

    Examples
    --------
    >>> parse_input_spec("sample_A.h5:/volumes/raw")
    (PosixPath('sample_A.h5'), '/volumes/raw')
    >>> parse_input_spec("stack.tif")
    (PosixPath('stack.tif'), None)
    """
    text = os.fspath(spec)
    if not isinstance(text, str):  # bytes paths: decode like the OS would
        text = os.fsdecode(text)
    text = os.path.expanduser(text)
    if not text.strip():
        raise InputError("no input path given: pass a file or folder")
    if os.path.exists(text):
        return Path(text), None
    for match in re.finditer(":", text):
        left, right = text[: match.start()], text[match.end() :]
        if not left:
            continue
        suffix = Path(left).suffix.lower()
        if suffix in HDF5_SUFFIXES + ZARR_SUFFIXES or os.path.exists(left):
            inner = "/" + right.strip("/")
            return Path(left), inner
    return Path(text), None


def is_zarr_dir(path: Path) -> bool:
    """A folder named ``*.zarr`` or holding a Zarr v2/v3 marker file."""
    return path.is_dir() and (
        path.suffix.lower() in ZARR_SUFFIXES or any((path / m).is_file() for m in _ZARR_MARKERS)
    )


def is_supported_path(spec: str | os.PathLike[str]) -> bool:
    """Cheap check, by extension or folder contents, whether :func:`read_volume` handles ``spec``.

    Used by the napari reader hook, so it never reads image data: a TIFF, PNG or HDF5 file by its
    extension, a Zarr store by its name or marker files, a folder when it holds at least one
    ``.tif``/``.tiff``/``.png`` file.

    Examples
    --------
    >>> is_supported_path("stack.tif"), is_supported_path("notes.txt")
    (True, False)
    >>> is_supported_path("sample_A.h5:/volumes/raw")
    True
    """
    try:
        path, inner = parse_input_spec(spec)
    except (TypeError, ValueError):
        return False
    suffix = path.suffix.lower()
    if inner is not None:
        return suffix in HDF5_SUFFIXES + ZARR_SUFFIXES or is_zarr_dir(path)
    if suffix in SLICE_SUFFIXES + HDF5_SUFFIXES and not path.is_dir():
        return True
    if suffix in ZARR_SUFFIXES or is_zarr_dir(path):
        return True
    if path.is_dir():
        try:
            with os.scandir(path) as entries:
                return any(
                    Path(e.name).suffix.lower() in SLICE_SUFFIXES and not e.name.startswith(".")
                    for e in entries
                )
        except OSError:
            return False
    return False
