"""Read a TIFF stack with tifffile, with its voxel size from OME-XML or ImageJ metadata.

With ``lazy=True`` an uncompressed TIFF whose pixels lie contiguously in the file (what ImageJ,
Fiji and tifffile write by default) is memory-mapped instead of read; other TIFFs are read.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import tifffile

from napari_emseg.io.units import all_positive, nm_per_unit, round_size, scale_in_nm
from napari_emseg.io.volume import InputError, RawRead, short_error, unreadable_error


class _LogCollector(logging.Handler):
    """Collects tifffile's error log records: it logs, rather than raises, on many corrupt files."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _tifffile_errors() -> Iterator[_LogCollector]:
    logger = logging.getLogger("tifffile")
    handler = _LogCollector()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def read_tiff(path: Path, *, slice_file: bool = False, lazy: bool = False) -> RawRead:
    """Read the first series of a TIFF; ``slice_file`` marks one 2D file of a slice folder."""
    mappable = False
    try:
        with _tifffile_errors() as log, tifffile.TiffFile(path) as tif:
            # Index every page first: tifffile logs a damaged IFD chain (e.g. one that loops back
            # to an earlier IFD) here, whereas building a series over it can loop forever.
            len(tif.pages)
            if log.messages:
                raise unreadable_error(path, "TIFF", log.messages[0])
            series = tif.series[0]
            axes = series.axes
            shape = tuple(series.shape)
            mappable = lazy and not slice_file and series.dataoffset is not None
            data = None if mappable else series.asarray()
            scale = _tiff_scale(tif, slice_file=slice_file)
            marker = _tiff_software(tif)
            expected = (tif.imagej_metadata or {}).get("images")
    except InputError:
        raise
    except MemoryError as exc:
        raise InputError(
            f"{path} is too large to read into memory: crop it or read a smaller region"
        ) from exc
    except Exception as exc:  # tifffile/imagecodecs raise many types on bad files
        raise unreadable_error(path, "TIFF", short_error(exc)) from exc
    if log.messages:
        raise unreadable_error(path, "TIFF", log.messages[0])
    if mappable:
        try:
            data = tifffile.memmap(path, series=0, mode="r")
        except Exception:  # e.g. a truncated file: the full read names the problem
            return read_tiff(path)
        if tuple(data.shape) != shape:
            return read_tiff(path)
    if len(axes) != data.ndim:  # seen on damaged tiled files: the series and its data disagree
        raise unreadable_error(path, "TIFF", f"axes {axes} do not fit the data shape {data.shape}")
    planes = math.prod(n for a, n in zip(axes, data.shape, strict=True) if a not in "YXS")
    if isinstance(expected, int) and expected > planes:
        raise unreadable_error(
            path, "TIFF", f"ImageJ header says {expected} images, found {planes}"
        )
    return RawRead(data=data, axes=axes, scale=scale, marker=marker)


def _tiff_software(tif: tifffile.TiffFile) -> str | None:
    tag = tif.pages[0].tags.get("Software")
    return str(tag.value).strip() if tag is not None else None


def _tiff_scale(
    tif: tifffile.TiffFile, *, slice_file: bool = False
) -> tuple[float, float, float] | None:
    """Voxel size in nm from OME-XML or ImageJ metadata, or None.

    ImageJ without ``spacing`` means a z size of 1 unit (what Fiji shows), except for one 2D file
    of a slice folder, where z = x is the better guess.
    """
    if tif.is_ome and tif.ome_metadata:
        scale = _ome_xml_scale(tif.ome_metadata)
        if scale is not None:
            return scale
    meta = tif.imagej_metadata
    if not meta:
        return None
    factor = nm_per_unit(meta.get("unit"))
    if factor is None:
        return None
    tags = tif.pages[0].tags
    sizes = []
    for name in ("YResolution", "XResolution"):
        tag = tags.get(name)
        pixels_per_unit = 1.0
        if tag is not None:
            num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
            pixels_per_unit = num / den if den else 0.0
        sizes.append(1.0 / pixels_per_unit if pixels_per_unit > 0 else math.nan)
    if "spacing" in meta:
        z = float(meta["spacing"]) * (nm_per_unit(meta.get("zunit")) or factor)
    else:
        z = sizes[1] * factor if slice_file else factor
    scale = (round_size(z), round_size(sizes[0] * factor), round_size(sizes[1] * factor))
    return scale if all_positive(scale) else None


def _ome_xml_scale(xml: str) -> tuple[float, float, float] | None:
    """Voxel size in nm from the first OME ``Pixels`` element, or None.

    Examples
    --------
    >>> _ome_xml_scale('<OME><Image><Pixels PhysicalSizeX="0.004" PhysicalSizeY="0.004" '
    ...                'PhysicalSizeZ="0.05"/></Image></OME>')
    (50.0, 4.0, 4.0)
    """
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    sizes: dict[str, float] = {}
    for axis in "ZYX":
        value = pixels.get(f"PhysicalSize{axis}")
        factor = nm_per_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))  # OME default is µm
        if value is None or factor is None:
            continue
        try:
            sizes[axis] = float(value) * factor
        except ValueError:
            continue
    if "X" not in sizes or "Y" not in sizes:
        return None
    scale = scale_in_nm(sizes.get("Z"), sizes["Y"], sizes["X"], 1.0)
    return scale if all_positive(scale) else None
