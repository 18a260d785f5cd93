"""read_volume: pick the reader for a path, then apply the checks every format shares."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_emseg.io.axes import to_zyx
from napari_emseg.io.hdf5_reader import read_hdf5
from napari_emseg.io.labels_rule import float_to_ids, guess_is_labels
from napari_emseg.io.lazy import DiskArray, load
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


def read_volume(
    spec: str | os.PathLike[str], *, as_labels: bool | None = None, lazy: bool = False
) -> Volume:
    """Read an EM stack or a segmentation as a (Z, Y, X) :class:`Volume`.

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
    lazy : bool
        Leave the voxels on disk where the format allows it, for volumes larger than memory:
        Zarr and HDF5 give a dask array (the store's chunks), an uncompressed contiguous TIFF
        a read-only ``numpy.memmap``; slice folders, PNG and compressed TIFFs are read as usual.
        Index a region and pass it to :func:`numpy.asarray` to get voxels (see also
        :func:`open_volume`). Default False: everything is read into a numpy array.

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
    >>> big = read_volume("stack.ome.zarr", lazy=True)  # doctest: +SKIP
    >>> big.data  # doctest: +SKIP
    dask.array<from-zarr, shape=(2000, 8192, 8192), dtype=uint8, chunksize=(64, 512, 512), ...>
    >>> read_volume("cremi_A.h5:/volumes/labels/neuron_ids").is_labels  # doctest: +SKIP
    True
    """
    path, raw = _read_raw(spec, lazy)
    volume = finish_volume(path, raw, as_labels)
    if isinstance(volume.data, DiskArray):
        volume.data = volume.data.to_dask()
    return volume


def open_volume(spec: str | os.PathLike[str], *, as_labels: bool | None = None) -> Volume:
    """Open a volume without reading it: like ``read_volume(spec, lazy=True)``, minus dask.

    ``data`` is a :class:`~napari_emseg.io.lazy.DiskArray` (Zarr, HDF5), a ``numpy.memmap``
    (uncompressed TIFF) or, for formats that cannot be read in parts, a numpy array. Indexing a
    DiskArray reads just that region, at a cost independent of the volume size (a dask array
    builds a task graph over all of its chunks first); the blockwise engine reads its blocks so.

    Examples
    --------
    >>> vol = open_volume("stack.zarr")  # doctest: +SKIP
    >>> vol.data[10, :256, :256].shape  # doctest: +SKIP
    (256, 256)
    """
    path, raw = _read_raw(spec, True)
    return finish_volume(path, raw, as_labels)


def _read_raw(spec: str | os.PathLike[str], lazy: bool) -> tuple[Path, RawRead]:
    """Pick the reader for ``spec`` and run it."""
    path, inner = parse_input_spec(spec)
    if not path.exists():
        raise InputError(f"{path} does not exist: check the path (supported: {SUPPORTED_FORMS})")
    suffix = path.suffix.lower()
    if is_zarr_dir(path):
        raw = read_zarr(path, inner, lazy=lazy)
    elif suffix in HDF5_SUFFIXES and path.is_file():
        raw = read_hdf5(path, inner, lazy=lazy)
    elif inner is not None:
        raise InputError(
            f"{path} is not an HDF5 file or a Zarr store, so '{path}:{inner}' cannot name a "
            "dataset in it: pass the file alone"
        )
    elif path.is_dir():
        raw = read_slice_folder(path)
    elif suffix in TIFF_SUFFIXES:
        raw = read_tiff(path, lazy=lazy)
    elif suffix in PNG_SUFFIXES:
        raw = read_png(path)
    else:
        raise InputError(
            f"{path} has an unsupported extension '{path.suffix}': napari-emseg reads "
            f"{SUPPORTED_FORMS}; convert it to TIFF (e.g. in Fiji: File > Save As > Tiff)"
        )
    return path, raw


def finish_volume(path: Path, raw: RawRead, as_labels: bool | None) -> Volume:
    """Checks and conversions shared by every format; on-disk data stays on disk."""
    # Lazy readers leave a zarr.Array, an h5py.Dataset or a numpy.memmap here.
    on_disk = isinstance(raw.data, np.memmap) or not isinstance(raw.data, np.ndarray)
    if on_disk and raw.axes is not None and raw.axes.endswith("S"):
        raw.data, on_disk = load(raw.data), False  # colour samples: checked (and folded) in memory
    if on_disk:
        data = _on_disk(raw.data, to_zyx(_shape_probe(raw.data), raw.axes, path).shape)
    else:
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
        data = float_to_ids(load(data), path)
    if raw.scale is None:
        scale, unit = _PIXEL_SCALE, "pixel"
    else:
        scale, unit = raw.scale, "nm"
    return Volume(data=data, scale=scale, unit=unit, is_labels=is_labels, name=name)


def _shape_probe(source: object) -> np.ndarray:
    """A zero-byte stand-in with the shape and dtype of an on-disk array, for :func:`to_zyx`."""
    return np.broadcast_to(np.zeros((), source.dtype), source.shape)  # type: ignore[attr-defined]


def _on_disk(source: object, shape: tuple[int, ...]) -> np.ndarray | DiskArray:
    """The (Z, Y, X) view of an on-disk array: a memory map as is, else a DiskArray."""
    dtype = np.dtype(source.dtype)  # type: ignore[attr-defined]
    native = np.dtype(np.uint8) if dtype == np.bool_ else dtype.newbyteorder("=")
    if isinstance(source, np.memmap) and native == dtype:
        return source.reshape(shape)  # only singleton axes change: still a memory map
    h5py_data = type(source).__module__.startswith("h5py")
    return DiskArray(source, shape, native, lock=h5py_data)  # h5py is not thread-safe
