"""FusionNet (Quan, Hildebrand and Jeong, arXiv 1612.05360).

Four encoder levels and a bridge, each a conv - residual - conv block; 2x2 max pooling down,
stride-2 transposed convolutions up, and skips that are *summed* with the decoder features
(not concatenated as in U-Net). The residual block has three 3x3 conv-BN layers, the last without
ReLU before the sum, as in the PyTorch port described in MODELS.md. ``width`` scales every level's
channels (1.0 = the paper's 64..1024) so that a CPU-sized variant exists.
"""

import torch
from torch import nn

from napari_emseg.models.blocks import ConvBNReLU
from napari_emseg.models.encoder_decoder import EncoderDecoder


class ResidualBlock(nn.Module):
    """x + F(x) with F three 3x3 conv-BN layers (ReLU after the first two)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvBNReLU(channels, channels),
            ConvBNReLU(channels, channels),
            ConvBNReLU(channels, channels, relu=False),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class ConvResConv(nn.Sequential):
    """The FusionNet level block: conv, residual block, conv."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(ConvBNReLU(c_in, c_out), ResidualBlock(c_out), ConvBNReLU(c_out, c_out))


class FusionNet(EncoderDecoder):
    """FusionNet for 2D membrane prediction; returns logits (1 = membrane).

    Parameters
    ----------
    in_channels, out_channels : int
        Image channels in and maps out.
    width : float
        Channel multiplier: level ``k`` has ``64 * 2**k * width`` channels.
    depth : int
        Encoder levels below the bridge (4 in the paper). Sizes that are not multiples of
        ``2**depth`` are padded by replication and cropped back.

    Examples
    --------
    >>> net = FusionNet(width=0.125)
    >>> net(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 1, 64, 64])
    """

    def block(self, c_in: int, c_out: int) -> nn.Module:
        return ConvResConv(c_in, c_out)

    def up(self, c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(
            nn.ConvTranspose2d(c_in, c_out, 2, stride=2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )

    def join(self, upsampled: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return upsampled + skip  # summed skip: FusionNet's key difference from U-Net
