"""In-plane resampling between a stack's pixel size and the pixel size a model was trained at.

A network learns membranes at one scale: a 10 nm FIB-SEM slice shows it membranes 2.5 times
thinner (in pixels) than the 4 nm ssTEM it saw. Slices are resampled in-plane only (z is never
touched: sections stay sections), anti-aliased when shrinking (a Gaussian before sampling, so
thin membranes do not alias away) and linearly interpolated when enlarging; outputs go back to
the input grid the same way.

Examples
--------
>>> image = np.random.default_rng(0).random((2, 50, 60)).astype(np.float32)
>>> small = to_pixel_size(image, 4.0, 10.0)
>>> small.shape, back_to_shape(small, image.shape).shape
((2, 20, 24), (2, 50, 60))
"""

import numpy as np
from skimage.transform import resize

# Pixel sizes within 10 % of the model's are used as they are: resampling costs time and
# blurs a little, and the networks are trained with that much scale jitter.
SCALE_TOLERANCE = 0.10
# A stack coarser than its model is enlarged by at most this factor: upsampling costs the
# square of the factor in time and memory (a 10 nm stack at 4 nm is 6.25x the pixels) and adds
# no detail the acquisition did not record.
MAX_UPSAMPLING = 1.25


def work_pixel_nm(
    pixel_nm: float | None,
    model_nm: float | None,
    pixel_range_nm: tuple[float, float] | None = None,
) -> float | None:
    """The pixel size a network sees a stack at: its own size when the model covers it.

    A model trained over a range of pixel sizes (``pixel_range_nm``) runs every stack inside
    the range at the stack's own resolution; a finer stack is shrunk to the range's fine end;
    a coarser one is enlarged by at most :data:`MAX_UPSAMPLING`. A model of one size
    (``model_nm``) is a range of one size. Unknown sizes stay unknown (None: as it is).

    Examples
    --------
    >>> work_pixel_nm(10.0, None, (4.0, 12.0)), work_pixel_nm(2.0, None, (4.0, 12.0))
    (10.0, 4.0)
    >>> work_pixel_nm(10.0, 4.0), work_pixel_nm(30.0, None, (4.0, 12.0))
    (8.0, 24.0)
    """
    if not pixel_nm:
        return None
    low, high = pixel_range_nm or (model_nm, model_nm)
    if not low or not high:
        return float(pixel_nm)
    pixel = float(pixel_nm)
    if pixel < low:
        return float(low)
    if pixel > high:
        return max(float(high), pixel / MAX_UPSAMPLING)
    return pixel


def needs_resampling(pixel_nm: float | None, model_nm: float | None) -> bool:
    """True when both sizes are known and differ by more than :data:`SCALE_TOLERANCE`.

    Examples
    --------
    >>> needs_resampling(10.0, 4.0), needs_resampling(4.2, 4.0), needs_resampling(None, 4.0)
    (True, False, False)
    """
    if not pixel_nm or not model_nm:
        return False
    return abs(float(pixel_nm) / float(model_nm) - 1.0) > SCALE_TOLERANCE


def _resize_slices(stack: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    shrinking = shape_yx[0] < stack.shape[1] or shape_yx[1] < stack.shape[2]
    out = np.empty((stack.shape[0], *shape_yx), np.float32)
    for z, plane in enumerate(stack):
        out[z] = resize(
            plane.astype(np.float32, copy=False),
            shape_yx,
            order=1,
            mode="reflect",
            anti_aliasing=shrinking,
            preserve_range=True,
        )
    return out


def to_pixel_size(stack: np.ndarray, pixel_nm: float, target_nm: float) -> np.ndarray:
    """A (Z, Y, X) float stack at ``pixel_nm`` resampled in-plane to ``target_nm`` (float32)."""
    factor = float(pixel_nm) / float(target_nm)
    shape_yx = tuple(max(1, int(round(n * factor))) for n in stack.shape[1:])
    return _resize_slices(np.asarray(stack), shape_yx)  # type: ignore[arg-type]


def back_to_shape(stack: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A resampled (Z, Y', X') stack brought back to the (Z, Y, X) ``shape`` of its input."""
    if stack.shape[0] != shape[0]:
        raise ValueError(f"depth {stack.shape[0]} differs from the input's {shape[0]}")
    return _resize_slices(np.asarray(stack), (int(shape[1]), int(shape[2])))
