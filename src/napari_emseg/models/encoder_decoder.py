"""The encoder-bridge-decoder skeleton that FusionNet and U-Net share.

Subclasses say what a level's block is, how the decoder goes up a level and how it joins the
encoder's skip (FusionNet sums, U-Net concatenates); the skeleton builds the levels, pads inputs
to a multiple of ``2**depth`` and crops the logits back, so any tile size works.
"""

import torch
from torch import nn

from napari_emseg.models.blocks import pad_to_multiple, scaled_channels


class EncoderDecoder(nn.Module):
    """Levels of ``64 * 2**k * width`` channels, 2x2 max pooling down, a bridge, and back up."""

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, *, width: float = 1.0, depth: int = 4
    ):
        super().__init__()
        self.depth = depth
        channels = [scaled_channels(64 * 2**k, width) for k in range(depth + 1)]
        self.encoders = nn.ModuleList()
        c_prev = in_channels
        for c in channels[:-1]:
            self.encoders.append(self.block(c_prev, c))
            c_prev = c
        self.pool = nn.MaxPool2d(2)
        self.bridge = self.block(channels[-2], channels[-1])
        self.ups = nn.ModuleList(
            self.up(channels[k + 1], channels[k]) for k in reversed(range(depth))
        )
        self.decoders = nn.ModuleList(
            self.block(self.joined_channels(channels[k]), channels[k])
            for k in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    def block(self, c_in: int, c_out: int) -> nn.Module:
        raise NotImplementedError

    def up(self, c_in: int, c_out: int) -> nn.Module:
        raise NotImplementedError

    def joined_channels(self, channels: int) -> int:
        """Channels entering a decoder block after the skip is joined."""
        return channels

    def join(self, upsampled: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

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
            x = decoder(self.join(up(x), skip))
        return self.head(x)[..., :height, :width]
