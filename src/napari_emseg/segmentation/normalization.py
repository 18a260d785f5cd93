"""Intensity normalisation shared by training and inference (so both see the same values)."""

import warnings
from typing import Any

import numpy as np

#: About this many voxels are sampled (on a regular stride) to estimate the percentiles.
_SAMPLE_VOXELS = 2_000_000


def sample_step(shape: tuple[int, ...]) -> int:
    """The stride, along every axis, of the percentile sample of an array of ``shape``.

    Examples
    --------
    >>> sample_step((30, 512, 512)), sample_step((4, 64, 64))
    (2, 1)
    """
    size = int(np.prod(shape))
    return max(1, int(np.ceil((size / _SAMPLE_VOXELS) ** (1 / 3))))


def intensity_range(
    image: Any, *, low: float = 0.5, high: float = 99.5
) -> tuple[float, float] | None:
    """The ``low`` and ``high`` percentiles of a stack, from a strided subsample.

    ``image`` may be any array that supports strided slicing (numpy, a memory map, a dask
    array): only the sample is read. 8- and 16-bit stacks are read one sampled plane at a time
    into a histogram, so memory stays at one plane whatever the volume size; the percentiles
    are the same as ``numpy.percentile`` of the sample. Blockwise processing computes the range
    once for the whole volume and passes it to every block, so that all blocks are normalised
    alike.

    Returns
    -------
    (float, float) or None
        ``(lo, hi)``; None when the sample has no finite value.

    Examples
    --------
    >>> intensity_range(np.arange(100, dtype=np.uint8).reshape(1, 10, 10))
    (0.495, 98.505)
    """
    step = sample_step(tuple(image.shape))
    dtype = np.dtype(image.dtype)
    if image.ndim == 3 and dtype.kind in "iu" and dtype.itemsize <= 2:
        base = int(np.iinfo(dtype).min)
        counts = np.zeros(1 << (8 * dtype.itemsize), np.int64)
        for z in range(0, image.shape[0], step):
            plane = _read(image[z, ::step, ::step]).astype(np.int64).ravel() - base
            counts += np.bincount(plane, minlength=counts.size)
        return _histogram_percentiles(counts, base, (low, high))
    sample = _read(image[::step, ::step, ::step] if image.ndim == 3 else image)
    finite = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample.ravel()
    if finite.size == 0:
        return None
    lo, hi = np.percentile(finite, [low, high])
    return float(lo), float(hi)


def _read(part: Any) -> np.ndarray:
    if hasattr(part, "compute"):  # dask: read here, single-threaded
        part = part.compute(scheduler="synchronous")
    return np.asarray(part)


def _histogram_percentiles(
    counts: np.ndarray, base: int, percents: tuple[float, float]
) -> tuple[float, float] | None:
    """``numpy.percentile`` (linear method) of the values ``base + i`` counted ``counts[i]``.

    Examples
    --------
    >>> _histogram_percentiles(np.array([1, 0, 3]), 10, (0.0, 50.0))
    (10.0, 12.0)
    """
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    if total == 0:
        return None

    def value(rank: int) -> float:  # the rank-th smallest value (0-based)
        return float(base + int(np.searchsorted(cumulative, rank, side="right")))

    found = []
    for percent in percents:
        position = percent / 100 * (total - 1)
        below = int(np.floor(position))
        t = position - below
        a, b = value(below), value(min(below + 1, total - 1))
        # numpy's lerp, including its switch to the upper end for t >= 0.5
        found.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)
    return found[0], found[1]


def check_has_content(image: np.ndarray) -> None:
    """Refuse an image with nothing to segment: no finite value, or one value everywhere.

    Examples
    --------
    >>> check_has_content(np.full((2, 4, 4), 7, np.uint8))
    Traceback (most recent call last):
    ...
    ValueError: the image is constant (every voxel is 7): nothing to segment
    """
    values = np.asarray(image)
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.any():
            raise ValueError("the image has no finite values (all NaN or Inf): nothing to segment")
        if not finite.all():
            values = values[finite]
    if values.size and values.min() == values.max():
        raise ValueError(
            f"the image is constant (every voxel is {values.flat[0]:g}): nothing to segment"
        )


def normalize_intensity(
    image: np.ndarray,
    *,
    low: float = 0.5,
    high: float = 99.5,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Map a stack to float32 with its ``low``/``high`` percentiles at 0 and 1.

    Percentiles come from a strided subsample so that big stacks stay cheap (see
    :func:`intensity_range`); ``value_range`` gives them instead (e.g. those of the whole volume
    when ``image`` is one block of it). Values outside the range are kept (clipped to [-1, 2])
    because saturated pixels still carry shape information.

    Examples
    --------
    >>> out = normalize_intensity(np.arange(100, dtype=np.uint8).reshape(1, 10, 10))
    >>> float(out.min()) < 0.01 and float(out.max()) > 0.99
    True
    >>> float(normalize_intensity(np.full((1, 2, 2), 60), value_range=(40, 80)).max())
    0.5
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
    found = value_range if value_range is not None else intensity_range(image, low=low, high=high)
    if found is None:
        return np.zeros(image.shape, np.float32)
    lo, hi = found
    scale = 1.0 / (hi - lo) if hi > lo else 1.0
    out = (image.astype(np.float32) - np.float32(lo)) * np.float32(scale)
    return np.clip(np.nan_to_num(out, nan=0.5, posinf=0.5, neginf=0.5), -1.0, 2.0, out=out)
