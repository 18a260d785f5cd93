import pytest
import torch

from napari_emseg.models import ARCHITECTURE_CLASSES as ARCHITECTURES
from napari_emseg.models import build_network


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("size", [(16, 16), (37, 53), (64, 31)])
def test_output_matches_input_size_at_odd_sizes(architecture, size):
    net = build_network(architecture, width=0.0625).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, *size))
    assert out.shape == (2, 1, *size)
    assert torch.isfinite(out).all()


def test_width_scales_parameters_and_full_width_matches_the_paper():
    def count(net):
        return sum(p.numel() for p in net.parameters())

    small = count(build_network("fusionnet", width=0.125))
    full = count(build_network("fusionnet", width=1.0))
    # The paper's FusionNet has about 78M parameters; width 1/8 has ~1/64 of them.
    assert 70e6 < full < 80e6
    assert 40 < full / small < 90


def test_fusionnet_sums_skips_and_unet_concatenates_them():
    fusion = build_network("fusionnet", width=0.0625)
    unet = build_network("unet", width=0.0625)
    first_decoder_in = fusion.decoders[-1][0][0].in_channels
    assert first_decoder_in == fusion.encoders[0][0][0].out_channels
    assert unet.decoders[-1][0][0].in_channels == 2 * unet.encoders[0][0][0].out_channels


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_network("resnet")
