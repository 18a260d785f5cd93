import numpy as np
import pytest
import torch
from torch import nn

from napari_emseg.inference.tiled import predict_tiled
from napari_emseg.inference.tiling import TileGrid, blend_window, tile_starts
from napari_emseg.models.fusionnet import FusionNet

CPU = torch.device("cpu")


@pytest.mark.parametrize(("length", "tile", "overlap"), [(10, 4, 1), (100, 32, 8), (7, 16, 4)])
def test_tiles_cover_every_pixel_and_stay_inside(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    covered = np.zeros(length, bool)
    for start in starts:
        covered[start : start + tile] = True
        assert start >= 0 and (start + tile <= length or length < tile)
    assert covered.all()


def test_blend_window_ramps_and_never_reaches_zero():
    window = blend_window(64, 16)
    assert window.min() > 0
    assert window[32] == 1.0
    assert np.all(np.diff(window[:16]) > 0)
    assert np.allclose(window, window[::-1])


def test_grid_tiles_are_multiples_of_the_divisor():
    grid = TileGrid.plan(100, 70, tile=50, overlap=8, divisor=16)
    assert grid.tile_y % 16 == 0 and grid.tile_x % 16 == 0


class Pointwise(nn.Module):
    """A per-pixel model: tiling must reproduce it exactly."""

    size_divisor = 16

    def forward(self, x):
        return 3.0 * x - 1.0


def test_tiled_inference_is_exact_for_a_pointwise_model(rng):
    image = rng.random((2, 150, 97), dtype=np.float32)
    out = predict_tiled(Pointwise(), image, device=CPU, tile=48, overlap=16, batch_size=3)
    expected = 1 / (1 + np.exp(-(3.0 * image - 1.0)))
    np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.slow
def test_tiled_equals_whole_image_inference_without_seams(rng):
    torch.manual_seed(0)
    net = FusionNet(width=0.0625, depth=2).eval()
    # A smooth image with structure, so the network output varies across the field.
    yy, xx = np.mgrid[0:128, 0:160]
    image = (np.sin(yy / 7.0) * np.cos(xx / 5.0))[None].astype(np.float32)
    whole = predict_tiled(net, image, device=CPU, tile=256, overlap=32)
    tiled = predict_tiled(net, image, device=CPU, tile=64, overlap=32, batch_size=5)
    assert whole.std() > 1e-3  # the comparison means something
    assert np.abs(tiled - whole).max() < 0.02
    # No seam: the error at tile borders is not larger than elsewhere by more than a margin.
    error = np.abs(tiled - whole)[0]
    assert error[:, 30:36].mean() < 5 * error.mean() + 1e-4


def test_cancel_stops_inference():
    from napari_emseg._progress import Cancelled

    with pytest.raises(Cancelled):
        predict_tiled(
            Pointwise(),
            np.zeros((3, 64, 64), np.float32),
            device=CPU,
            tile=32,
            overlap=8,
            cancel=lambda: True,
        )
