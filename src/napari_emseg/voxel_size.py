"""Voxel sizes: the one check of a size given by a user or a file, and the warning when a size
had to be estimated.

Sizes are (z, y, x) in nanometres. EM voxels lie between a few angstroms and a few micrometres
per axis, and pixels coarser than 100 nm show no membranes: anything outside that is almost
always a unit mistake (micrometres typed as nanometres), which is cheaper to refuse than to run.
"""

from collections.abc import Iterable

import numpy as np

VoxelSize = tuple[float, float, float]
# Plausible EM sizes in nm: every axis in AXIS_RANGE_NM, the in-plane pixel at most MAX_PIXEL_NM.
AXIS_RANGE_NM = (0.5, 5000.0)
MAX_PIXEL_NM = 100.0


class VoxelSizeWarning(UserWarning):
    """The voxel size matters for this operation but was not given: it was estimated."""


def checked_voxel_size(voxel_size: Iterable[float]) -> VoxelSize:
    """Three positive numbers (z, y, x) in nm within plausible EM sizes, else a one-line
    ``ValueError`` that hints at the units.

    Parameters
    ----------
    voxel_size : iterable of float
        The size (z, y, x) in nm, e.g. from the user, a CLI option or a file's metadata.

    Returns
    -------
    (float, float, float)
        The same size as a tuple of floats.

    Raises
    ------
    ValueError
        One line, when the size is not three positive finite numbers, or an axis lies outside
        ``AXIS_RANGE_NM``, or the in-plane pixel is coarser than ``MAX_PIXEL_NM`` (a hint
        names the likely unit mistake).

    Examples
    --------
    >>> checked_voxel_size([50, 4, 4])
    (50.0, 4.0, 4.0)
    >>> checked_voxel_size([0.05, 0.004, 0.004])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: voxel size (0.05, 0.004, 0.004) nm is not an EM voxel size: ... not micrometres
    """
    try:
        size = tuple(float(v) for v in voxel_size)
    except (TypeError, ValueError):
        message = f"voxel size must be three numbers (z, y, x) in nm, got {voxel_size!r}"
        raise ValueError(message) from None
    if len(size) != 3 or not all(np.isfinite(v) and v > 0 for v in size):
        raise ValueError(f"voxel size must be three positive numbers (z, y, x) in nm, got {size}")
    low, high = AXIS_RANGE_NM
    if not all(low <= v <= high for v in size) or max(size[1:]) > MAX_PIXEL_NM:
        shown = ", ".join(f"{v:g}" for v in size)
        unit_hint = (
            "give it in nanometres (e.g. 50 4 4), not micrometres"
            if max(size) < low
            else "give it in nanometres (e.g. 50 4 4), not picometres or angstroms"
            if min(size) > high
            else "check the units and the order (z, y, x)"
        )
        raise ValueError(
            f"voxel size ({shown}) nm is not an EM voxel size: each axis must lie in "
            f"{low:g}-{high:g} nm and pixels at most {MAX_PIXEL_NM:g} nm; {unit_hint}"
        )
    return size  # type: ignore[return-value]
