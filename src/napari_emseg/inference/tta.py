"""Test-time augmentation: average a network's prediction over the 8 flips/rotations."""

import numpy as np
import torch
from torch import nn

from napari_emseg.inference.tiled import predict_tiled
from napari_emseg.segmentation.dihedral import dihedral, inverse_dihedral


def predict_tiled_tta(
    net: nn.Module,
    image: np.ndarray,
    *,
    device: torch.device,
    transforms: int = 8,
    **kwargs: int,
) -> np.ndarray:
    """Mean of :func:`predict_tiled` over the first ``transforms`` of the 8 dihedral transforms.

    Costs ``transforms`` times one prediction; each output is mapped back before averaging.

    Examples
    --------
    >>> from napari_emseg.models.unet import UNet
    >>> net = UNet(width=0.0625, depth=2)
    >>> predict_tiled_tta(net, np.zeros((1, 24, 40), np.float32), device=torch.device("cpu")).shape
    (1, 24, 40)
    """
    progress = kwargs.pop("progress", None)
    total = np.zeros(image.shape, np.float32)
    for k in range(transforms):
        view = np.ascontiguousarray(dihedral(image, k))
        part = None if progress is None else _view_progress(progress, k, transforms)
        total += inverse_dihedral(
            predict_tiled(net, view, device=device, progress=part, **kwargs), k
        )
    return total / transforms


def _view_progress(progress, view: int, views: int):
    """Progress of one view as its share of all views' (one bar, never going back)."""
    return lambda done, total, message: progress(view * total + done, views * total, message)
