"""waterz, the seed paper's baseline, fed from a membrane map (an optional dependency).

waterz agglomerates a watershed of affinities; here the affinity between a voxel and its
predecessor along an axis is 1 - the larger of their membrane values.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence

import numpy as np

INSTALL_HINT = "install it with: .venv/bin/pip install 'napari-emseg[eval]'"


def waterz_available() -> bool:
    """Whether waterz can be imported (the ``eval`` extra)."""
    return importlib.util.find_spec("waterz") is not None


def boundary_affinities(boundary: np.ndarray, *, axes: Sequence[int] = (0, 1, 2)) -> np.ndarray:
    """(3, Z, Y, X) float32 affinities for waterz from a boundary map (1 = boundary).

    Channel ``c`` at a voxel links it to its predecessor along axis ``c`` (z, y, x), the waterz
    convention; the affinity is ``1 - max`` of the two voxels' boundary values (clipped to
    0..1), and 0 where there is no predecessor or the axis is not in ``axes`` (``(1, 2)``:
    no links between slices).

    Examples
    --------
    >>> boundary = np.array([[[0.0, 1.0, 0.2]]])
    >>> boundary_affinities(boundary)[2, 0, 0].tolist()
    [0.0, 0.0, 0.0]
    >>> boundary_affinities(np.zeros((2, 1, 2)), axes=(1, 2))[:, 1, 0].tolist()
    [[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    """
    boundary = np.clip(np.asarray(boundary, np.float32), 0.0, 1.0)
    if boundary.ndim != 3:
        raise ValueError(f"a boundary map is (Z, Y, X), got shape {boundary.shape}")
    affs = np.zeros((3, *boundary.shape), np.float32)
    for axis in axes:
        here, before = [slice(None)] * 3, [slice(None)] * 3
        here[axis], before[axis] = slice(1, None), slice(None, -1)
        affs[(axis, *here)] = 1.0 - np.maximum(boundary[tuple(here)], boundary[tuple(before)])
    return np.ascontiguousarray(affs)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence file descriptor 1 (waterz prints from C++, past ``sys.stdout``)."""
    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def waterz_supervoxels(membrane: np.ndarray, threshold: float, *, per_slice: bool) -> np.ndarray:
    """waterz's own supervoxels (mean-affinity merging up to ``threshold``) of a membrane map;
    no z links ``per_slice``."""
    import waterz

    affs = boundary_affinities(membrane, axes=(1, 2) if per_slice else (0, 1, 2))
    with quiet_stdout():
        segments = waterz.agglomerate(affs, [threshold])
        return next(segments).copy()  # waterz reuses its buffer
