"""Arrays that stay on disk: Zarr arrays, HDF5 datasets and memory-mapped TIFFs.

:class:`DiskArray` presents an on-disk array as the (Z, Y, X) volume that
:func:`~napari_emseg.io.read_volume` would return (singleton axes dropped or added, bytes in
native order, bool as uint8) and reads only the region it is indexed with. The blockwise engine
reads its blocks through it (:func:`~napari_emseg.io.read.open_volume`): a region read costs that
region, whatever the size of the volume. ``read_volume(..., lazy=True)`` wraps it in a dask
array (:meth:`DiskArray.to_dask`) for napari and for users; dask is imported only then.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The napari reader keeps inputs above this size (in bytes) on disk; smaller ones are loaded
#: into memory, where labels can be painted.
LAZY_ABOVE_BYTES = 1 << 30


class DiskArray:
    """A (Z, Y, X) view of an on-disk array; indexing reads just that region into numpy.

    Parameters
    ----------
    source : zarr.Array, h5py.Dataset or numpy.memmap
        Anything indexable with slices and integers that returns numpy data.
    shape : tuple of int
        The view's shape: ``source.shape`` with singleton axes dropped or added only.
    dtype : numpy dtype
        The dtype regions are returned in (e.g. native byte order).
    lock : bool
        Serialise reads in dask (h5py is not thread-safe).

    Examples
    --------
    >>> disk = DiskArray(np.arange(24).reshape(1, 2, 3, 4), (2, 3, 4), np.int64)
    >>> disk.shape, disk[1, :2, 3].tolist()
    ((2, 3, 4), [15, 19])
    """

    def __init__(self, source: Any, shape: tuple[int, ...], dtype: Any, *, lock: bool = False):
        self.source = source
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.lock = lock
        inner = [n for n in source.shape if n != 1]
        if inner != [n for n in self.shape if n != 1]:
            raise ValueError(f"shape {self.shape} is not {tuple(source.shape)} without singletons")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"DiskArray(shape={self.shape}, dtype={self.dtype}, source={type(self.source)})"

    def __getitem__(self, key: Any) -> np.ndarray:
        key = _full_key(key, self.shape)
        # Non-singleton axes of the view and of the source correspond one to one, in order;
        # singleton axes of the source are read whole (length 1) and reshaped away.
        wanted = iter(k for k, n in zip(key, self.shape, strict=True) if n != 1)
        source_key = tuple(next(wanted) if n != 1 else slice(None) for n in self.source.shape)
        out_shape = [len(range(n)[k]) for k, n in zip(key, self.shape, strict=True) if _is_slice(k)]
        for k, n in zip(key, self.shape, strict=True):
            if n == 1 and not _is_slice(k):
                range(n)[k]  # noqa: B018 - raises IndexError for an index out of range
        if 0 in out_shape:
            return np.zeros(out_shape, self.dtype)
        part = np.asarray(self.source[source_key]).reshape(out_shape)
        return part.astype(self.dtype, copy=False)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[(slice(None),) * self.ndim]
        return data if dtype is None else data.astype(dtype, copy=False)

    @property
    def chunks(self) -> tuple[int, ...]:
        """Chunk shape for dask: the source's chunks, or (1, Y, X) planes for unchunked data."""
        found = getattr(self.source, "chunks", None)
        if not found or isinstance(self.source, np.ndarray):
            return (1, *self.shape[1:]) if self.ndim == 3 else self.shape
        inner = iter(c for c, n in zip(found, self.source.shape, strict=True) if n != 1)
        return tuple(next(inner) if n != 1 else 1 for n in self.shape)

    def to_dask(self) -> Any:
        """A dask array reading this one chunk by chunk.

        ``name=False`` gives the graph a random key instead of hashing the source (hashing an
        h5py dataset or a memory map would read it).
        """
        import dask.array as da

        return da.from_array(self, chunks=self.chunks, name=False, lock=self.lock, asarray=True)


def _is_slice(key: Any) -> bool:
    return isinstance(key, slice)


def _full_key(key: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """``key`` as one int or slice per axis (Ellipsis expanded, missing axes whole)."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + (slice(None),) * (len(shape) - len(key) + 1) + key[at + 1 :]
    if len(key) > len(shape):
        raise IndexError(f"too many indices ({len(key)}) for an array of shape {shape}")
    key = key + (slice(None),) * (len(shape) - len(key))
    full = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, slice):
            full.append(k)
        elif isinstance(k, (int, np.integer)):
            index = int(k) + n if k < 0 else int(k)
            if not 0 <= index < n:
                raise IndexError(f"index {int(k)} is out of bounds for an axis of size {n}")
            full.append(index)
        else:
            raise TypeError(f"DiskArray takes integers and slices, not {type(k).__name__}")
    return tuple(full)


def is_lazy(data: Any) -> bool:
    """True for arrays whose voxels are not (all) in memory: disk arrays, memory maps, dask.

    Examples
    --------
    >>> is_lazy(np.zeros(3)), is_lazy([1, 2])
    (False, False)
    """
    return isinstance(data, (DiskArray, np.memmap)) or _is_dask(data)


def _is_dask(data: Any) -> bool:
    return hasattr(data, "dask") and hasattr(data, "compute") and hasattr(data, "chunks")


def nbytes(data: Any) -> int:
    """Size of the array's voxels in bytes, without reading them.

    Examples
    --------
    >>> nbytes(np.zeros((2, 4, 4), np.uint16))
    64
    """
    return int(np.prod(data.shape)) * np.dtype(data.dtype).itemsize


def read_region(data: Any, region: tuple[slice, ...]) -> np.ndarray:
    """``data[region]`` as an in-memory numpy array, whatever the array type.

    A dask array is computed with the synchronous scheduler: this is also called inside
    dask.distributed tasks, where a nested ``compute`` would go back to the cluster.

    Examples
    --------
    >>> read_region(np.arange(10).reshape(2, 5), (slice(0, 1), slice(1, 3)))
    array([[1, 2]])
    """
    part = data[region]
    if _is_dask(part):
        part = part.compute(scheduler="synchronous")
    return np.array(part)  # a copy: a memory map's region must not keep the file mapped


def load(data: Any) -> np.ndarray:
    """Read a lazy array into memory (a plain in-memory numpy array is returned as is).

    Examples
    --------
    >>> a = np.zeros(3); load(a) is a
    True
    """
    if type(data) is np.ndarray:
        return data
    if _is_dask(data):
        return np.asarray(data.compute())
    return np.array(data)
