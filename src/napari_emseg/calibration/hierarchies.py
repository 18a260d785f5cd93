"""Recorded agglomerations of membrane maps, kept for the next call on the same map.

A proofreader repropagates many times on one membrane map: the agglomeration (seconds on a few
million voxels) is made once. A map is recognised by its identity, shape and a sample of its
values, so an array changed in place is not mistaken for the one cached.
"""

import numpy as np

from napari_emseg.segmentation.supervoxels import Hierarchy, supervoxel_hierarchy

_CACHE: dict[tuple, Hierarchy] = {}
_CACHE_SIZE = 2


def _key(membrane: np.ndarray, voxel_size, sigma: float) -> tuple:
    sample = np.asarray(membrane).ravel()[:: max(membrane.size // 4096, 1)]
    digest = float(np.asarray(sample, np.float64).sum())
    voxel = None if voxel_size is None else tuple(float(v) for v in voxel_size)
    return (id(membrane), membrane.shape, digest, voxel, round(float(sigma), 4))


def cached_hierarchy(membrane: np.ndarray, voxel_size, *, sigma: float) -> Hierarchy:
    """The 3D :func:`supervoxel_hierarchy` of ``membrane``, reused while the map is the same.

    Examples
    --------
    >>> membrane = np.zeros((2, 8, 8), np.float32); membrane[:, :, 4] = 1
    >>> cached_hierarchy(membrane, None, sigma=0.5) is cached_hierarchy(membrane, None, sigma=0.5)
    True
    """
    key = _key(membrane, voxel_size, sigma)
    if key not in _CACHE:
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = supervoxel_hierarchy(
            membrane, voxel_size=voxel_size, per_slice=False, sigma=sigma
        )
    return _CACHE[key]
