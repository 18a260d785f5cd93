"""U-Net (Ronneberger, Fischer and Brox 2015) with padded convolutions.

Two 3x3 conv-BN-ReLU per level, 2x2 max pooling, 2x2 up-convolutions and *concatenated* skips.
Padded convolutions (the usual modern choice) keep the output the size of the input, so the same
tiled inference serves U-Net and FusionNet. ``width`` scales the 64..1024 channels.
"""

import torch
from torch import nn

from napari_emseg.models.blocks import ConvBNReLU
from napari_emseg.models.encoder_decoder import EncoderDecoder


class DoubleConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(ConvBNReLU(c_in, c_out), ConvBNReLU(c_out, c_out))


class UNet(EncoderDecoder):
    """U-Net for 2D membrane prediction; returns logits (1 = membrane).

    Examples
    --------
    >>> net = UNet(width=0.125)
    >>> net(torch.zeros(1, 1, 48, 80)).shape
    torch.Size([1, 1, 48, 80])
    """

    def block(self, c_in: int, c_out: int) -> nn.Module:
        return DoubleConv(c_in, c_out)

    def up(self, c_in: int, c_out: int) -> nn.Module:
        return nn.ConvTranspose2d(c_in, c_out, 2, stride=2)

    def joined_channels(self, channels: int) -> int:
        return 2 * channels

    def join(self, upsampled: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([upsampled, skip], dim=1)
