"""Classical boundary maps (numpy / scikit-image), the default until trained weights ship."""

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import sato

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report


def ridge_membrane_slice(
    image: np.ndarray, *, sigmas: tuple[float, ...] = (1.0, 2.0), darkness_weight: float = 0.5
) -> np.ndarray:
    """Membrane probability of one normalised 2D slice from dark ridges and darkness.

    Membranes in EM are thin dark curves: the Sato tubeness filter (``black_ridges``) responds to
    them at the given scales, and plain darkness fills in where the ridge response is weak
    (thick or blurred membranes). Both are rescaled to [0, 1] by robust percentiles.
    """
    smooth = ndi.gaussian_filter(image.astype(np.float32), 1.0)
    ridge = sato(smooth, sigmas=sigmas, black_ridges=True, mode="reflect")
    ridge = _robust_unit(ridge)
    darkness = 1.0 - _robust_unit(ndi.gaussian_filter(smooth, 1.0))
    prob = (1.0 - darkness_weight) * ridge + darkness_weight * darkness
    # Smoothing suppresses vesicle-sized dark specks, which would otherwise split cells.
    return ndi.gaussian_filter(_robust_unit(prob), 2.0)


def _robust_unit(values: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(values, [1.0, 99.0])
    if hi <= lo:
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def ridge_membrane(
    image: np.ndarray,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> np.ndarray:
    """Apply :func:`ridge_membrane_slice` to every slice of a (Z, Y, X) stack.

    Examples
    --------
    >>> stack = np.ones((2, 32, 32), np.float32); stack[:, 16, :] = 0
    >>> prob = ridge_membrane(stack)
    >>> bool(prob[0, 16, 10] > prob[0, 5, 10])
    True
    """
    out = np.empty(image.shape, np.float32)
    for z in range(image.shape[0]):
        check_cancel(cancel)
        out[z] = ridge_membrane_slice(image[z])
        report(progress, z + 1, image.shape[0], "membrane (ridge filter)")
    return out
