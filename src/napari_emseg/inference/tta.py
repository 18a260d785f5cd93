"""Test-time augmentation: average a network's prediction over the 8 flips/rotations."""

import numpy as np
import torch
from torch import nn

from napari_emseg._progress import ProgressCallback, stage_progress
from napari_emseg.inference import tiled
from napari_emseg.segmentation.dihedral import dihedral, inverse_dihedral


def predict_tiled_tta(
    net: nn.Module,
    image: np.ndarray,
    *,
    device: torch.device,
    transforms: int = 8,
    progress: ProgressCallback | None = None,
    **kwargs: int,
) -> np.ndarray:
    """Mean of :func:`predict_tiled` over the first ``transforms`` of the 8 dihedral transforms.

    Costs ``transforms`` times one prediction; each output is mapped back before averaging.
    Progress runs once over all of them.

    Examples
    --------
    >>> from napari_emseg.models.unet import UNet
    >>> net = UNet(width=0.0625, depth=2)
    >>> predict_tiled_tta(net, np.zeros((1, 24, 40), np.float32), device=torch.device("cpu")).shape
    (1, 24, 40)
    """
    if transforms == 1:  # no copy, no sum: the plain prediction
        return tiled.predict_tiled(net, image, device=device, progress=progress, **kwargs)
    total = np.zeros(image.shape, np.float32)
    for k in range(transforms):
        view = np.ascontiguousarray(dihedral(image, k))
        part = stage_progress(progress, k / transforms, (k + 1) / transforms)
        total += inverse_dihedral(
            tiled.predict_tiled(net, view, device=device, progress=part, **kwargs), k
        )
    return total / transforms
