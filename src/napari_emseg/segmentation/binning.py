"""In-plane binning of stacks: the learned propagator works at one pixel size (8-10 nm)."""

import numpy as np


def downsample_factor(pixel_nm: float, target_nm: float) -> int:
    """Integer in-plane binning that brings ``pixel_nm`` closest to ``target_nm`` (>= 1).

    Examples
    --------
    >>> downsample_factor(4.0, 8.0), downsample_factor(10.0, 8.0), downsample_factor(3.0, 8.0)
    (2, 1, 3)
    """
    return max(1, int(round(target_nm / pixel_nm)))


def bin_mean(stack: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor x factor`` pixel blocks of every slice (edges cropped to a multiple)."""
    if factor == 1:
        return stack.astype(np.float32)
    z, h, w = stack.shape
    h, w = h - h % factor, w - w % factor
    blocks = stack[:, :h, :w].reshape(z, h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(2, 4), dtype=np.float32)


def bin_ids(ids: np.ndarray, factor: int) -> np.ndarray:
    """Ids at the binned resolution (the top-left pixel of each block)."""
    if factor == 1:
        return ids
    z, h, w = ids.shape
    return ids[:, : h - h % factor : factor, : w - w % factor : factor]
