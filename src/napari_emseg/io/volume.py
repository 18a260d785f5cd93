"""The types every reader shares: the user-facing error, the result, and a reader's raw find."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """A user-facing problem with an input or output path.

    ``str(err)`` is ONE line naming the problem and the fix, fit for a napari notification or a CLI
    error. Newlines in the message are folded into spaces.

    Examples
    --------
    >>> str(InputError("scan.tif does not exist:\\n check the path"))
    'scan.tif does not exist: check the path'
    """

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))


class OutputExistsError(InputError):
    """An output that exists and may not be replaced; the CLI names its own flag instead."""

    def __init__(self, path: object) -> None:
        self.path = path
        super().__init__(f"{path} exists and was left as it is (overwrite=True replaces it)")


@dataclass
class Volume:
    """A volume read from disk, ready to become a napari layer.

    Attributes
    ----------
    data : np.ndarray, numpy.memmap or dask.array.Array
        Array of shape (Z, Y, X); a 2D image is returned as (1, Y, X). Native byte order. A
        numpy array unless it was read with ``read_volume(..., lazy=True)``.
    scale : tuple of float
        Voxel size (z, y, x); in nm when the unit is known, else ``(1.0, 1.0, 1.0)``.
    unit : str
        ``"nm"`` when physical metadata was found, else ``"pixel"``.
    is_labels : bool
        True for a segmentation (integer ids), False for an intensity image.
    name : str
        A layer name, e.g. the file stem.

    Examples
    --------
    >>> import numpy as np
    >>> import numpy as np
    >>> vol = Volume(np.zeros((1, 4, 4), np.uint8), (1.0, 1.0, 1.0), "pixel", False, "blank")
    >>> vol.data.shape
    (1, 4, 4)
    """

    data: Any  # np.ndarray when read eagerly; see the Attributes above
    scale: tuple[float, float, float]
    unit: str
    is_labels: bool
    name: str

    @property
    def voxel_size_nm(self) -> tuple[float, float, float] | None:
        """The voxel size (z, y, x) in nm, or None when the file did not say."""
        return tuple(self.scale) if self.unit == "nm" else None


@dataclass
class RawRead:
    """What a format-specific reader found, before the checks shared by every format."""

    data: Any  # np.ndarray, or a dask array / numpy.memmap when read lazily
    axes: str | None = None  # tifffile axis letters when known, e.g. "ZYX", "CYX", "YXS"
    scale: tuple[float, float, float] | None = None  # nm, or None when unknown
    marker: str | None = None  # our TIFF Software marker, if any
    names: tuple[str, ...] = ()  # extra names for the labels guess (dataset path parts)
    name: str | None = None  # layer name, when the file stem is not the right one


def short_error(exc: BaseException) -> str:
    """First line of a library error, for embedding in a one-line message.

    Examples
    --------
    >>> short_error(OSError("disk full\\nmore detail"))
    'OSError: disk full'
    """
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    first = first if len(first) <= 160 else first[:157] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def unreadable_error(path: Path, what: str, detail: str) -> InputError:
    """The error for a file that exists but cannot be decoded."""
    return InputError(
        f"{path} is not a readable {what} ({detail}): the file may be truncated or corrupt; "
        "copy or export it again"
    )


def file_stem(path: Path) -> str:
    """The file name without its extension, treating ``.ome.tif``-style double suffixes as one.

    Examples
    --------
    >>> file_stem(Path("cells.ome.tiff")), file_stem(Path("stack.tif")), file_stem(Path("slices"))
    ('cells', 'stack', 'slices')
    """
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem if path.suffix else name
