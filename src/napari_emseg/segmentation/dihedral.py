"""The 8 flips and rotations of an image's last two axes: training's augmentation and
inference's test-time augmentation use the same ones."""

import numpy as np

__all__ = ["dihedral", "inverse_dihedral"]


def dihedral(array: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th of the 8 flips/rotations (0 = identity) of the last two axes.

    Examples
    --------
    >>> a = np.arange(6).reshape(2, 3)
    >>> all((inverse_dihedral(dihedral(a, k), k) == a).all() for k in range(8))
    True
    """
    if k >= 4:
        array = np.flip(array, axis=-1)
    return np.rot90(array, k % 4, axes=(-2, -1))


def inverse_dihedral(array: np.ndarray, k: int) -> np.ndarray:
    """Undo :func:`dihedral` with the same ``k``."""
    array = np.rot90(array, -(k % 4), axes=(-2, -1))
    return np.flip(array, axis=-1) if k >= 4 else array
