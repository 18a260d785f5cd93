"""The in-plane pixel size chosen on the corrected slices, when the file gave none.

An estimated pixel size (:mod:`napari_emseg.inference.pixel_size`) sets every size the engine
defines in nm (watershed seeds and minimum areas, smoothing, the learned propagator's binning)
and the scale the network sees a stack at outside its range. Candidates around the estimate
each segment the corrected slices (a 2D watershed of the map predicted at that size) and the
one that reproduces them best is kept.
"""

from collections.abc import Callable

import numpy as np

from napari_emseg.calibration.report import Choice
from napari_emseg.calibration.scoring import slice_error
from napari_emseg.segmentation.watershed import watershed_slice

# Within the estimator's accuracy (docs/results/pixel-size-estimate.md): a wider search lets one
# slice's noise pull the size away from a good estimate.
FACTORS = (0.8, 0.9, 1.0, 1.12, 1.25)


def choose_pixel_size(
    image: np.ndarray,
    labels: np.ndarray,
    slices: list[int],
    *,
    estimate: float,
    predict: Callable[[np.ndarray, float], np.ndarray],
    factors: tuple[float, ...] = FACTORS,
) -> Choice:
    """The pixel size (nm) among ``estimate * factors`` that segments ``slices`` best.

    ``predict(stack, pixel_nm)`` returns the membrane map of a (Z, Y, X) stack.
    """
    stack = np.asarray(image)[slices]
    scores: dict[float, float] = {}
    for factor in factors:
        pixel = round(float(estimate) * factor, 2)
        membrane = predict(stack, pixel)
        errors = [
            slice_error(watershed_slice(membrane[k], pixel_nm=pixel), labels[z])
            for k, z in enumerate(slices)
        ]
        scores[pixel] = float(np.mean(errors))
    default = round(float(estimate), 2)
    chosen = min(scores, key=lambda p: (scores[p], abs(np.log(p / default))))
    return Choice(
        name="pixel_nm",
        value=chosen,
        default=default,
        score=scores[chosen],
        default_score=scores[default],
        scored_on=list(slices),
        candidates={f"{p:g}": round(s, 4) for p, s in scores.items()},
        how="adapted Rand error of a 2D watershed of the corrected slices at each pixel size",
    )
