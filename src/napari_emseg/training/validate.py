"""Validation of a membrane network on whole slices: ISBI 2012 scores and pixel loss."""

import copy

import numpy as np
import torch
from torch import nn

from napari_emseg.inference.tiled import predict_tiled
from napari_emseg.metrics import isbi2012_scores

# The metric's default thresholds (0.05..0.95) plus lower ones: well-trained networks are so
# confident that their best V_rand threshold is often below 0.05 (a gap of a few pixels with
# P(membrane) of 0.02 already merges two cells at 0.05).
VALIDATION_THRESHOLDS = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.03,
    0.04,
    *(round(0.05 * k, 2) for k in range(1, 20)),
)


def validate(
    net: nn.Module,
    image: np.ndarray,
    membrane: np.ndarray,
    *,
    device: torch.device,
    tile: int = 256,
    pixel_nm: float | None = None,
    work_nm: float | None = None,
) -> dict[str, float]:
    """Scores of ``net`` on full validation slices, predicted as inference would.

    Parameters
    ----------
    net : nn.Module
        The network being trained; it is not modified (a copy is evaluated, because
        :func:`predict_tiled` may convert parameters to another memory format inside
        ``torch.inference_mode``, which would make them unusable for training).
    image : ndarray of float32, shape (Z, Y, X)
        Normalised slices.
    membrane : ndarray of bool, shape (Z, Y, X)
        Their membrane labels.
    pixel_nm, work_nm : float, optional
        The slices' pixel size and the one the network sees: when both are given and differ,
        the slices are resampled to ``work_nm`` for prediction and the map back to their grid,
        so a coarser acquisition is scored against the full-resolution labels.

    Returns
    -------
    dict
        ``vrand``, ``vinfo``, ``vrand_threshold``, ``pixel_error`` (see
        :func:`napari_emseg.metrics.isbi2012_scores`, here over
        :data:`VALIDATION_THRESHOLDS`; ``vrand``/``vinfo`` are NaN when the slices hold no
        object) and ``bce`` (mean pixel cross-entropy of the probabilities).
    """
    model = copy.deepcopy(net).eval()
    batch = 16 if device.type == "cuda" else 2
    if pixel_nm and work_nm and abs(pixel_nm / work_nm - 1.0) > 0.02:
        from napari_emseg.inference.resampling import back_to_shape, to_pixel_size

        small = to_pixel_size(image, pixel_nm, work_nm)
        prob = predict_tiled(model, small, device=device, tile=tile, batch_size=batch)
        prob = back_to_shape(prob, image.shape)
    else:
        prob = predict_tiled(model, image, device=device, tile=tile, batch_size=batch)
    prob = np.clip(prob, 0.0, 1.0)
    target = membrane.astype(np.float32)
    p = np.clip(prob, 1e-6, 1 - 1e-6)
    bce = float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)))
    gt = np.where(membrane, 0, 255).astype(np.uint8)
    try:
        scores = isbi2012_scores(prob, gt, thresholds=VALIDATION_THRESHOLDS)
    except ValueError:  # no object in any slice (e.g. an all-membrane crop)
        pixel_error = float(np.mean((prob >= 0.5) != membrane))
        scores = {"vrand": float("nan"), "vinfo": float("nan"), "pixel_error": pixel_error}
    keep = ("vrand", "vinfo", "vrand_threshold", "pixel_error")
    return {**{k: float(v) for k, v in scores.items() if k in keep}, "bce": bce}
