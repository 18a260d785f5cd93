"""The CUDA inference path against the CPU one (skipped where there is no GPU)."""

import numpy as np
import pytest
import torch

from napari_emseg.inference.tiled import predict_tiled
from napari_emseg.models.fusionnet import FusionNet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("shape", [(3, 300, 520), (1, 64, 64), (5, 1024, 700)])
def test_gpu_tiles_match_cpu(shape):
    torch.manual_seed(0)
    net = FusionNet(width=0.125, depth=4).eval()
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    cpu = predict_tiled(net, image, device=torch.device("cpu"), tile=256, batch_size=4)
    gpu = predict_tiled(net, image, device=torch.device("cuda"), tile=256, batch_size=7)
    assert gpu.shape == cpu.shape
    # bf16 autocast on the GPU: probabilities agree to about 1e-2, not bit for bit.
    assert np.abs(gpu - cpu).max() < 0.05
    assert np.abs(gpu - cpu).mean() < 5e-3
