"""A fully convolutional membrane network after Fakhry, Peng and Ji (Bioinformatics 2016).

This is a *reconstruction*, not the paper's network: its Table 1 (the exact layers of the four
architectures) was not recoverable. What the paper's text does say, and what this module keeps:

- back-to-back moderate (3x3) convolutions with only ReLU between them instead of one large kernel,
  which adds non-linearity and saves parameters;
- wide context early: the input-side ("bottom") layers must already see a large window.

The paper classified pixels from patches; here the same ideas are made fully convolutional so that
one forward pass labels a whole tile. The full-resolution stem stacks 3x3 convolutions with growing
dilation (1, 2, 4: a 15 px window before the first pooling), each encoder level stacks two more
3x3 convolutions, and the coarsest level stacks dilated 3x3 convolutions for context of several
hundred pixels. A light decoder upsamples bilinearly and adds 1x1-projected encoder features back at
each level. Batch norm after every convolution is our addition (it makes short CPU training
converge); ``width`` scales every level's channels (1.0 = 64..512).
"""

import torch
import torch.nn.functional as F
from torch import nn

from napari_emseg.models.blocks import pad_to_multiple, scaled_channels

# Dilations of the stem (full resolution) and of the bottleneck (coarsest level).
STEM_DILATIONS = (1, 2, 4)
BOTTLENECK_DILATIONS = (1, 2, 4, 8)


class ConvReLU(nn.Sequential):
    """3x3 convolution (optionally dilated), batch norm and ReLU; the size is kept."""

    def __init__(self, c_in: int, c_out: int, *, dilation: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


def conv_stack(c_in: int, c_out: int, dilations: tuple[int, ...]) -> nn.Sequential:
    """Back-to-back 3x3 ConvReLU layers, one per dilation."""
    layers = [
        ConvReLU(c_in if i == 0 else c_out, c_out, dilation=d) for i, d in enumerate(dilations)
    ]
    return nn.Sequential(*layers)


class FakhryNet(nn.Module):
    """Stacked-3x3 encoder with wide early context and a light decoder; returns logits.

    Parameters
    ----------
    in_channels, out_channels : int
        Image channels in and maps out (1 = membrane logit).
    width : float
        Channel multiplier: level ``k`` has ``64 * 2**min(k, 3) * width`` channels.
    depth : int
        Number of 2x2 poolings. Sizes that are not multiples of ``2**depth`` are padded by
        replication and cropped back.

    Examples
    --------
    >>> net = FakhryNet(width=0.125)
    >>> net(torch.zeros(1, 1, 45, 70)).shape
    torch.Size([1, 1, 45, 70])
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, *, width: float = 1.0, depth: int = 4
    ):
        super().__init__()
        self.depth = depth
        channels = [scaled_channels(64 * 2 ** min(k, 3), width) for k in range(depth + 1)]
        self.stem = conv_stack(in_channels, channels[0], STEM_DILATIONS)
        self.pool = nn.MaxPool2d(2)
        self.encoders = nn.ModuleList(
            conv_stack(channels[k], channels[k + 1], (1, 1)) for k in range(depth - 1)
        )
        # The coarsest level: dilated stacks give the deep features context beyond the tile.
        self.bottleneck = conv_stack(channels[depth - 1], channels[depth], BOTTLENECK_DILATIONS)
        self.skips = nn.ModuleList(
            nn.Conv2d(channels[k], channels[k + 1], 1, bias=False) for k in range(depth)
        )
        self.decoders = nn.ModuleList(
            ConvReLU(channels[k + 1], channels[k]) for k in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    @property
    def size_divisor(self) -> int:
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.size_divisor)
        x = self.stem(x)
        features = [x]
        for encoder in self.encoders:
            x = encoder(self.pool(x))
            features.append(x)
        x = self.bottleneck(self.pool(x))
        for k, decoder in zip(reversed(range(self.depth)), self.decoders, strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = decoder(x + self.skips[k](features[k]))  # summed, projected skip: cheap
        return self.head(x)[..., :height, :width]
