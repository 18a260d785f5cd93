"""U-Net (Ronneberger, Fischer and Brox 2015) with padded convolutions.

Two 3x3 conv-BN-ReLU per level, 2x2 max pooling, 2x2 up-convolutions and *concatenated* skips.
Padded convolutions (the usual modern choice) keep the output the size of the input, so the same
tiled inference serves U-Net and FusionNet. ``width`` scales the 64..1024 channels.
"""

import torch
from torch import nn

from napari_emseg.models.blocks import ConvBNReLU, pad_to_multiple, scaled_channels


class DoubleConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(ConvBNReLU(c_in, c_out), ConvBNReLU(c_out, c_out))


class UNet(nn.Module):
    """U-Net for 2D membrane prediction; returns logits (1 = membrane).

    Examples
    --------
    >>> net = UNet(width=0.125)
    >>> net(torch.zeros(1, 1, 48, 80)).shape
    torch.Size([1, 1, 48, 80])
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, *, width: float = 1.0, depth: int = 4
    ):
        super().__init__()
        self.depth = depth
        channels = [scaled_channels(64 * 2**k, width) for k in range(depth + 1)]
        self.encoders = nn.ModuleList()
        c_prev = in_channels
        for c in channels[:-1]:
            self.encoders.append(DoubleConv(c_prev, c))
            c_prev = c
        self.pool = nn.MaxPool2d(2)
        self.bridge = DoubleConv(channels[-2], channels[-1])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for k in reversed(range(depth)):
            self.ups.append(nn.ConvTranspose2d(channels[k + 1], channels[k], 2, stride=2))
            self.decoders.append(DoubleConv(2 * channels[k], channels[k]))
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    @property
    def size_divisor(self) -> int:
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.size_divisor)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bridge(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return self.head(x)[..., :height, :width]
