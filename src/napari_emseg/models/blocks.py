"""Building blocks shared by the membrane networks."""

import torch
import torch.nn.functional as F
from torch import nn


def scaled_channels(base: int, width: float) -> int:
    """Channels of a level after the width multiplier (at least 4, a multiple of 4)."""
    return max(4, int(round(base * width / 4)) * 4)


class ConvBNReLU(nn.Sequential):
    """3x3 convolution, batch norm and ReLU (padding keeps the size)."""

    def __init__(self, c_in: int, c_out: int, *, relu: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def pad_to_multiple(x: torch.Tensor, divisor: int) -> torch.Tensor:
    """Replicate-pad the last two dims up to multiples of ``divisor`` (pooling needs them)."""
    pad_y = -x.shape[-2] % divisor
    pad_x = -x.shape[-1] % divisor
    if pad_y or pad_x:
        x = F.pad(x, (0, pad_x, 0, pad_y), mode="replicate")
    return x
