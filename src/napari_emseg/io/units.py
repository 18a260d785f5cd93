"""Length units and voxel sizes: everything physical is converted to nanometres."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Length units as written by ImageJ, OME and OME-Zarr, in nanometres.
_NM_PER_UNIT = {
    "pm": 1e-3,
    "picometer": 1e-3,
    "a": 0.1,
    "å": 0.1,
    "angstrom": 0.1,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "um": 1e3,
    "µm": 1e3,  # micro sign U+00B5
    "μm": 1e3,  # greek mu U+03BC
    "micron": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimetre": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "m": 1e9,
    "meter": 1e9,
    "metre": 1e9,
}


def nm_per_unit(unit: object) -> float | None:
    """Nanometres per ``unit`` (ImageJ, OME or OME-Zarr spelling), or None when not a length.

    Examples
    --------
    >>> nm_per_unit("micron"), nm_per_unit("nanometers"), nm_per_unit("pixel")
    (1000.0, 1.0, None)
    """
    if not isinstance(unit, str):
        return None
    key = unit.strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ").lower()
    if key.endswith("s") and key[:-1] in _NM_PER_UNIT:  # "microns", "nanometers"
        key = key[:-1]
    return _NM_PER_UNIT.get(key)


def round_size(value: float) -> float:
    """Round to 6 significant digits, which undoes TIFF's rational 1/size (3.8 stays 3.8)."""
    return float(f"{value:.6g}")


def scale_in_nm(z: float | None, y: float, x: float, factor: float) -> tuple[float, float, float]:
    """(z, y, x) times ``factor`` nm per unit; a missing z takes the x size.

    Examples
    --------
    >>> scale_in_nm(None, 0.004, 0.004, 1e3)
    (4.0, 4.0, 4.0)
    """
    z = x if z is None else z
    return (round_size(z * factor), round_size(y * factor), round_size(x * factor))


def all_positive(values: Sequence[float]) -> bool:
    """True when every value is a finite number above zero (a usable voxel size)."""
    return all(math.isfinite(v) and v > 0 for v in values)
