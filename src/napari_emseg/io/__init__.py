"""Read EM volumes and write segmentations that open correctly in Fiji.

Everything here is numpy in, numpy out: no napari, no Qt, no torch. The napari reader and writer
hooks (:mod:`napari_emseg._reader`, :mod:`napari_emseg._writer`), the CLI and the widgets all go
through :func:`read_volume`, :func:`write_labels_tiff` and :func:`write_image_tiff`.

Supported inputs
----------------
- a multi-page TIFF (``stack.tif``); voxel size from ImageJ or OME-XML metadata;
- a folder of 2D ``.tif``/``.tiff``/``.png`` slices, stacked in natural order;
- HDF5: ``file.h5`` holding one 2D/3D dataset, or ``file.h5:/path/to/dataset``;
- Zarr: an array folder, ``store.zarr:/path``, a group holding one array, or an OME-Zarr image.

``read_volume(spec, lazy=True)`` leaves Zarr and HDF5 voxels on disk (a dask array) and
memory-maps uncompressed TIFFs, for volumes larger than memory; :func:`open_volume` gives the
same without dask, for reading regions (:mod:`~napari_emseg.io.lazy`).

Every problem a user can fix is raised as :class:`InputError`, whose message is one line that names
the file and says what to do.

Layout: :mod:`~napari_emseg.io.read` dispatches on :mod:`~napari_emseg.io.spec` to one reader
(``tiff_reader``, ``slices``, ``hdf5_reader``, ``zarr_reader``), then ``axes`` and ``labels_rule``
finish the volume; ``tiff_writer`` writes through ``write_checks`` and ``atomic``.
"""

# The "X as X" imports are public names kept importable from here (e.g. TIFF_SUFFIXES for the
# npe2 writer) without widening __all__.

from napari_emseg.io.labels_rule import IMAGE_MARKER as IMAGE_MARKER
from napari_emseg.io.labels_rule import LABELS_MARKER
from napari_emseg.io.read import open_volume, read_volume
from napari_emseg.io.spec import HDF5_SUFFIXES as HDF5_SUFFIXES
from napari_emseg.io.spec import PNG_SUFFIXES as PNG_SUFFIXES
from napari_emseg.io.spec import SLICE_SUFFIXES as SLICE_SUFFIXES
from napari_emseg.io.spec import SUPPORTED_FORMS as SUPPORTED_FORMS
from napari_emseg.io.spec import TIFF_SUFFIXES as TIFF_SUFFIXES
from napari_emseg.io.spec import ZARR_SUFFIXES as ZARR_SUFFIXES
from napari_emseg.io.spec import is_supported_path, parse_input_spec
from napari_emseg.io.tiff_writer import write_image_tiff, write_labels_tiff
from napari_emseg.io.volume import InputError, OutputExistsError, Volume

__all__ = [
    "LABELS_MARKER",
    "InputError",
    "OutputExistsError",
    "Volume",
    "is_supported_path",
    "open_volume",
    "parse_input_spec",
    "read_volume",
    "write_image_tiff",
    "write_labels_tiff",
]
