"""Calibration: every data-dependent choice checked against the slices the user corrected.

For near-isotropic stacks (FIB-SEM) the 3D agglomeration threshold of the ``agglomeration``
method; for thick sections the threshold of the per-slice supervoxels the vote uses; with two
or more corrected slices the propagation method (leave one out). The pixel size, when the file
gave none, is chosen by :func:`~napari_emseg.calibration.scale.choose_pixel_size` before the
membrane map is made. A slice only counts when it is corrected densely
(:func:`~napari_emseg.calibration.scoring.why_not_calibrated`); without one, nothing is
calibrated and the reason is reported.
"""

import time
from collections.abc import Callable, Iterable

import numpy as np

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_emseg.calibration.hierarchies import cached_hierarchy
from napari_emseg.calibration.method import choose_method
from napari_emseg.calibration.report import Calibration
from napari_emseg.calibration.scoring import usable_slices
from napari_emseg.calibration.threshold import choose_threshold
from napari_emseg.segmentation.supervoxels import (
    DEFAULT_SIGMA_2D,
    DEFAULT_THRESHOLD_2D,
    is_anisotropic,
    supervoxel_hierarchy,
)

# The agglomeration's threshold is scored half on its achievable error (segments that cross the
# slice are named by it, so their splits there cost nothing) and half on its plain error
# (segments elsewhere stay apart): the 3D error lies between the two. On gala train the mix
# chose the threshold the achievable error chose (3D ARE 0.014); on maps where the achievable
# error fell to the grid's lowest threshold it did not (docs/results/calibration.md).
SPLIT_WEIGHT = 0.5


def calibrate(
    image: np.ndarray,
    labels: np.ndarray,
    slices: Iterable[int],
    *,
    membrane: np.ndarray,
    voxel_size: tuple[float, float, float] | None,
    method: str,
    methods: list[str] | None = None,
    run: Callable[..., np.ndarray] | None = None,
    default_threshold: float | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Calibration:
    """Choose the agglomeration or vote threshold and, with two or more slices, the method.

    Parameters
    ----------
    image, labels, membrane : ndarray, shape (Z, Y, X)
        The stack, the labels holding the corrected slices, the membrane map.
    slices : iterable of int
        The corrected slices.
    voxel_size : (z, y, x) in nm, or None
        Decides 3D (near-isotropic) or per-slice supervoxels, and converts nm sizes.
    method : str
        The method that runs without calibration (the default of the choice).
    methods : list of str, optional
        Methods to compare when two or more slices are usable (needs ``run``).
    run : callable, optional
        ``run(image, labels, ref, membrane=, method=, z_range=)``: a propagation with the
        caller's options, for the method choice.
    default_threshold : float, optional
        The agglomeration threshold kept unless the slices prefer another (default: the start
        rule's for a map of the sections, ``DEFAULT_THRESHOLD``).

    Returns
    -------
    Calibration
    """
    from napari_emseg.propagation.agglomeration import DEFAULT_SIGMA_NM, DEFAULT_THRESHOLD

    started = time.perf_counter()
    usable, reason = usable_slices(labels, slices)
    result = Calibration(slices=usable, skipped=reason)
    if not usable:
        return result
    check_cancel(cancel)
    report(progress, 0, 2, "calibrating on the corrected slices")
    pixel = float(voxel_size[-1]) if voxel_size else 4.0
    if not is_anisotropic(voxel_size, membrane):
        hierarchy = cached_hierarchy(membrane, voxel_size, sigma=DEFAULT_SIGMA_NM / pixel)
        result.choices["threshold"] = choose_threshold(
            hierarchy,
            labels,
            usable,
            default=default_threshold or DEFAULT_THRESHOLD,
            split_weight=SPLIT_WEIGHT,
        )
        result.hierarchy = hierarchy
    else:
        flat = supervoxel_hierarchy(membrane[usable], per_slice=True, sigma=DEFAULT_SIGMA_2D)
        choice = choose_threshold(
            flat, labels[usable], list(range(len(usable))), default=DEFAULT_THRESHOLD_2D
        )
        choice.name, choice.scored_on = "vote_threshold", usable
        choice.how = "achievable adapted Rand error of the per-slice supervoxels on the slices"
        result.choices["vote_threshold"] = choice
    report(progress, 1, 2, "calibrating on the corrected slices")
    if run is not None and methods and len(usable) >= 2:
        chosen = choose_method(
            image, labels, usable, membrane=membrane, methods=methods, default=method, run=run,
            cancel=cancel,
        )  # fmt: skip
        if chosen is not None:
            result.choices["method"] = chosen
    report(progress, 2, 2, "calibrating on the corrected slices")
    result.seconds = time.perf_counter() - started
    return result
