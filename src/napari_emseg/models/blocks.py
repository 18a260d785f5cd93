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


def conv_with_shared(
    x: torch.Tensor,
    shared: torch.Tensor,
    conv: nn.Conv2d,
    at: int,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``conv`` of every object's input with the sample's ``shared`` channels inserted at ``at``.

    ``x`` is (B * M, C, h, w), the M objects of each sample in turn, without the shared
    channels; ``shared`` is (B, S, h, w). Convolution is linear, so the shared channels (a
    frame's features, the same for all of its objects) are convolved once per sample instead
    of once per object and added: the result equals ``conv`` of the concatenated input.
    ``weight`` (default ``conv.weight``) may be a slice of its input channels.

    Examples
    --------
    >>> conv = nn.Conv2d(5, 3, 3, padding=1)
    >>> x, shared = torch.randn(4, 3, 6, 6), torch.randn(2, 2, 6, 6)
    >>> full = torch.cat([x[:, :1], shared.repeat_interleave(2, 0), x[:, 1:]], dim=1)
    >>> torch.allclose(conv_with_shared(x, shared, conv, 1), conv(full), atol=1e-5)
    True
    """
    weight = conv.weight if weight is None else weight
    end = at + shared.shape[1]
    own = torch.cat([weight[:, :at], weight[:, end:]], dim=1)
    out = F.conv2d(x, own, conv.bias, padding=conv.padding)
    common = F.conv2d(shared, weight[:, at:end], padding=conv.padding)
    out = out.view(shared.shape[0], -1, *out.shape[1:]) + common[:, None]
    return out.flatten(0, 1)
