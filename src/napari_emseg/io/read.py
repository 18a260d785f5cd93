"""read_volume: pick the reader for a path, then apply the checks every format shares."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_emseg.io.axes import to_zyx
from napari_emseg.io.hdf5_reader import read_hdf5
from napari_emseg.io.labels_rule import float_to_ids, guess_is_labels
from napari_emseg.io.slices import read_png, read_slice_folder
from napari_emseg.io.spec import (
    HDF5_SUFFIXES,
    PNG_SUFFIXES,
    SUPPORTED_FORMS,
    TIFF_SUFFIXES,
    is_zarr_dir,
    parse_input_spec,
)
from napari_emseg.io.tiff_reader import read_tiff
from napari_emseg.io.volume import InputError, RawRead, Volume, file_stem
from napari_emseg.io.zarr_reader import read_zarr

_PIXEL_SCALE = (1.0, 1.0, 1.0)  # voxel size when the file gives none


def read_volume(spec: str | os.PathLike[str], *, as_labels: bool | None = None) -> Volume:
    """Read an EM stack or a segmentation into memory as a (Z, Y, X) :class:`Volume`.

    Parameters
    ----------
    spec : str or os.PathLike
        A ``.tif``/``.tiff`` stack; a folder of 2D ``.tif``/``.tiff``/``.png`` slices (natural
        order: ``s2`` before ``s10``); ``file.h5`` with exactly one 2D/3D dataset, or
        ``file.h5:/path/to/dataset``; a Zarr array folder, ``store.zarr:/path``, a Zarr group with
        exactly one array, or an OME-Zarr image (its full-resolution level).
    as_labels : bool, optional
        Force the result to be labels (True) or an image (False). By default it is guessed:

        1. a TIFF written by :func:`write_labels_tiff` (Software tag ``"napari-emseg labels"``)
           is labels; one written by :func:`write_image_tiff` is an image;
        2. else a float array is an image;
        3. else an integer (or bool) array is labels when the file stem, or a part of the
           HDF5/Zarr dataset path, is one of ``label(s)``, ``seg(s)``, ``segmentation``, ``gt``,
           ``groundtruth``, ``instance(s)``, ``id(s)``, ``mask(s)`` (case-insensitive, as a word:
           ``train-labels``, ``neuron_ids``, ``segGT``, ``seg2``);
        4. else uint32/int32/uint64/int64 data is labels (too many levels for an EM image);
        5. everything else (uint8/uint16 grey without those hints) is an image.

    Returns
    -------
    Volume
        ``data`` has shape (Z, Y, X) (a 2D image gives (1, Y, X)) and native byte order; bool data
        becomes uint8. ``scale`` is the voxel size in nm when the file says so (ImageJ
        ``unit``/``spacing`` and X/YResolution, OME ``PhysicalSize*``, HDF5/Zarr attributes
        ``element_size_um`` in micron or ``resolution``/``voxel_size`` in nm, OME-Zarr
        ``coordinateTransformations``), else ``(1.0, 1.0, 1.0)`` with unit ``"pixel"``. ImageJ
        files without ``spacing`` get a z size of 1 unit, as Fiji shows them; other formats that
        give only y and x get z = x.

    Raises
    ------
    InputError
        The path is missing, unsupported, unreadable, empty, has a zero-sized or extra dimension,
        or names no dataset. The message is one line with the fix.

    Warns
    -----
    UserWarning
        An RGB(A) file whose colour channels are all equal is read as greyscale (alpha dropped).
        RGB files with real colour raise InputError.

    Examples
    --------
    >>> vol = read_volume("train-volume.tif")  # doctest: +SKIP
    >>> vol.data.shape, vol.scale, vol.unit, vol.is_labels  # doctest: +SKIP
    ((30, 512, 512), (50.0, 4.0, 4.0), 'nm', False)
    >>> read_volume("cremi_A.h5:/volumes/labels/neuron_ids").is_labels  # doctest: +SKIP
    True
    """
    path, inner = parse_input_spec(spec)
    if not path.exists():
        raise InputError(f"{path} does not exist: check the path (supported: {SUPPORTED_FORMS})")
    suffix = path.suffix.lower()
    if is_zarr_dir(path):
        raw = read_zarr(path, inner)
    elif suffix in HDF5_SUFFIXES and path.is_file():
        raw = read_hdf5(path, inner)
    elif inner is not None:
        raise InputError(
            f"{path} is not an HDF5 file or a Zarr store, so '{path}:{inner}' cannot name a "
            "dataset in it: pass the file alone"
        )
    elif path.is_dir():
        raw = read_slice_folder(path)
    elif suffix in TIFF_SUFFIXES:
        raw = read_tiff(path)
    elif suffix in PNG_SUFFIXES:
        raw = read_png(path)
    else:
        raise InputError(
            f"{path} has an unsupported extension '{path.suffix}': napari-emseg reads "
            f"{SUPPORTED_FORMS}; convert it to TIFF (e.g. in Fiji: File > Save As > Tiff)"
        )
    return finish_volume(path, raw, as_labels)


def finish_volume(path: Path, raw: RawRead, as_labels: bool | None) -> Volume:
    """Checks and conversions shared by every format."""
    data = to_zyx(raw.data, raw.axes, path)
    if not data.dtype.isnative:  # ImageJ writes big-endian by default; napari/torch prefer native
        data = data.astype(data.dtype.newbyteorder("="))
    if data.dtype == np.bool_:
        data = data.view(np.uint8)
    if data.dtype.kind not in "iuf":
        raise InputError(
            f"{path} holds {data.dtype} data: napari-emseg needs integer or float pixels; "
            "save the image as 8-bit, 16-bit or 32-bit grey"
        )
    name = raw.name or file_stem(path)
    if as_labels is None:
        is_labels = guess_is_labels(data.dtype, (file_stem(path), *raw.names), raw.marker)
    else:
        is_labels = bool(as_labels)
    if is_labels and data.dtype.kind == "f":
        data = float_to_ids(data, path)
    if raw.scale is None:
        scale, unit = _PIXEL_SCALE, "pixel"
    else:
        scale, unit = raw.scale, "nm"
    return Volume(data=data, scale=scale, unit=unit, is_labels=is_labels, name=name)
