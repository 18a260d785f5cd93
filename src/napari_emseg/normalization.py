"""Intensity normalisation shared by training and inference (so both see the same values)."""

import warnings

import numpy as np


def normalize_intensity(image: np.ndarray, *, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Map a stack to float32 with its ``low``/``high`` percentiles at 0 and 1.

    Percentiles come from a strided subsample so that big stacks stay cheap; values outside the
    range are kept (clipped to [-1, 2]) because saturated pixels still carry shape information.

    Examples
    --------
    >>> out = normalize_intensity(np.arange(100, dtype=np.uint8).reshape(1, 10, 10))
    >>> float(out.min()) < 0.01 and float(out.max()) > 0.99
    True
    """
    image = np.asarray(image)
    if image.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(image)))
        if bad:
            warnings.warn(
                f"the image has {bad} NaN/Inf values; they are treated as mid-grey",
                UserWarning,
                stacklevel=3,
            )
    step = max(1, int(np.ceil((image.size / 2_000_000) ** (1 / 3))))
    sample = image[::step, ::step, ::step] if image.ndim == 3 else image
    finite = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample.ravel()
    if finite.size == 0:
        return np.zeros(image.shape, np.float32)
    lo, hi = np.percentile(finite, [low, high])
    scale = 1.0 / (hi - lo) if hi > lo else 1.0
    out = (image.astype(np.float32) - np.float32(lo)) * np.float32(scale)
    return np.clip(np.nan_to_num(out, nan=0.5, posinf=0.5, neginf=0.5), -1.0, 2.0, out=out)
