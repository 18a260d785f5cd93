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
    total = np.zeros(image.shape, np.float32)
    for k in range(transforms):
        view = np.ascontiguousarray(dihedral(image, k))
        total += inverse_dihedral(predict_tiled(net, view, device=device, **kwargs), k)
    return total / transforms
