import warnings

import numpy as np
import pytest
import torch

from napari_emseg.inference.fallback import fallback_plans, is_out_of_memory, run_with_fallback
from napari_emseg.inference.tiled import predict_tiled


class GreedyNet(torch.nn.Module):
    """Raises CUDA's out-of-memory error on inputs larger than ``limit`` pixels per call."""

    size_divisor = 16

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        if x.numel() > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return x * 0.0


def test_out_of_memory_errors_are_recognised():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_plans_shrink_batches_then_tiles_then_move_to_the_cpu():
    plans = fallback_plans(torch.device("cuda"), 512, 8)
    assert [(p[1], p[2]) for p in plans[:4]] == [(512, 8), (512, 4), (512, 2), (512, 1)]
    assert [p[1] for p in plans[4:-1]] == [256, 128]
    assert plans[-1][0].type == "cpu"


def test_inference_retries_with_smaller_settings_and_says_so():
    net = GreedyNet(limit=128 * 128)  # only one 128-px tile at a time fits
    image = np.zeros((2, 200, 200), np.float32)
    cpu = torch.device("cpu")

    def predict(where, size, batch):
        return predict_tiled(net, image, device=where, tile=size, overlap=16, batch_size=batch)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = run_with_fallback(predict, device=cpu, tile=256, batch_size=4)
    assert out.shape == image.shape and np.allclose(out, 0.5)
    messages = [str(w.message) for w in caught]
    assert messages and all("out of memory" in m for m in messages)
    assert net.calls[0][0] == 2  # both slices' tiles in one batch at first
    assert net.calls[-1] == (1, 1, 128, 128)  # finally one 128-px tile at a time


def test_other_errors_are_not_swallowed():
    def predict(where, size, batch):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        run_with_fallback(predict, device=torch.device("cpu"), tile=256, batch_size=2)


def test_hopeless_out_of_memory_ends_in_a_clear_error():
    def predict(where, size, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(MemoryError, match="even with 128-px tiles"):
            run_with_fallback(predict, device=torch.device("cpu"), tile=256, batch_size=2)
