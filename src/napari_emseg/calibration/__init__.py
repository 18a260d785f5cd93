"""Self-calibration: data-dependent choices scored on the slices the user corrected.

:func:`calibrate` chooses the agglomeration (or vote) threshold and, with two or more corrected
slices, the propagation method; :func:`~.scale.choose_pixel_size` the pixel size of a stack
whose file gave none. What was chosen, and on what scores, is a :class:`Calibration`.
"""

from napari_emseg.calibration.calibrate import calibrate
from napari_emseg.calibration.report import Calibration, Choice
from napari_emseg.calibration.scale import choose_pixel_size
from napari_emseg.calibration.scoring import usable_slices, why_not_calibrated

__all__ = [
    "Calibration",
    "Choice",
    "calibrate",
    "choose_pixel_size",
    "usable_slices",
    "why_not_calibrated",
]
