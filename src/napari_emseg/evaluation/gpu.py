"""GPU efficiency of membrane inference (scripts/benchmark_gpu.py): set-ups against a roofline.

Each set-up predicts the same stack; its model FLOP rate is compared with the rate of a large
bf16 matrix product measured in the same run. ``legacy`` is the loop before the GPU path (tiles
stacked on the CPU, one synchronous copy each way per batch, blended on the CPU); the others are
:func:`~napari_emseg.inference.tiled.predict_on_gpu` with several precisions and batch sizes.
Everything but :func:`legacy_predict` needs CUDA.
"""

from __future__ import annotations

import json

import numpy as np

from napari_emseg.evaluation.machine import median_seconds, network_flops_per_slice


def synchronised_seconds(run, repeats: int) -> float:
    """Median seconds of ``run`` after one warm-up, waiting for the GPU each time."""
    import torch

    def synchronised() -> None:
        run()
        torch.cuda.synchronize()

    synchronised()
    return median_seconds(synchronised, repeats)


def matmul_rate(repeats: int, size: int = 8192) -> float:
    """FLOP/s of a ``size``^3 bf16 matrix product on the GPU: the roofline."""
    import torch

    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    return 2 * size**3 / synchronised_seconds(lambda: a @ b, repeats)


def _plan(image: np.ndarray, tile: int, overlap: int):
    from napari_emseg.inference.tiling import TileGrid

    halo = overlap // 2
    _, height, width = image.shape
    grid = TileGrid.plan(
        height + 2 * halo, width + 2 * halo, tile=tile, overlap=overlap, divisor=16
    )
    padded = (max(height + 2 * halo, grid.tile_y), max(width + 2 * halo, grid.tile_x))
    return grid, halo, padded


def legacy_predict(net, image, *, device="cuda", tile=512, overlap=32, batch_size=16):
    """The pre-GPU-path loop (bf16 autocast): CPU tiles, synchronous copies, CPU blending.
    Returns the padded, blended stack (a ``overlap // 2`` halo around each slice), as
    :func:`~napari_emseg.inference.tiled.predict_on_gpu` does.

    Examples
    --------
    >>> from napari_emseg.models.fusionnet import FusionNet
    >>> net = FusionNet(width=0.0625, depth=2).eval()
    >>> legacy_predict(net, np.zeros((1, 40, 50), np.float32), device="cpu", tile=64).shape
    (1, 72, 82)
    """
    import torch

    from napari_emseg.inference.tiled import pad_to

    device = torch.device(device)
    grid, halo, (ph, pw) = _plan(image, tile, overlap)
    weights = grid.weights(overlap)
    out = np.zeros((image.shape[0], ph, pw), np.float32)
    norm = np.zeros_like(out)
    jobs = [(z, y, x) for z in range(image.shape[0]) for y, x in grid.positions()]
    with torch.inference_mode():
        for first in range(0, len(jobs), batch_size):
            batch = jobs[first : first + batch_size]
            tiles = []
            for z, y, x in batch:
                padded = pad_to(image[z], ph - 2 * halo, pw - 2 * halo, halo)
                tiles.append(padded[y : y + grid.tile_y, x : x + grid.tile_x])
            inputs = torch.from_numpy(np.stack(tiles)[:, None]).to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                probs = torch.sigmoid(net(inputs).float())[:, 0].cpu().numpy()
            for (z, y, x), prob in zip(batch, probs, strict=True):
                out[z, y : y + grid.tile_y, x : x + grid.tile_x] += prob * weights
                norm[z, y : y + grid.tile_y, x : x + grid.tile_x] += weights
    return out / np.maximum(norm, 1e-6)


def gpu_predict(net, image, *, dtype, batch_size, tile=512, overlap=32):
    """:func:`~napari_emseg.inference.tiled.predict_on_gpu` with the legacy loop's tiles."""
    import torch

    from napari_emseg.inference.tiled import predict_on_gpu

    grid, halo, padded = _plan(image, tile, overlap)
    with torch.inference_mode():
        return predict_on_gpu(
            net,
            image,
            grid=grid,
            weights=grid.weights(overlap),
            halo=halo,
            padded=padded,
            device=torch.device("cuda"),
            batch_size=batch_size,
            dtype=dtype,
        )


def membrane_rows(name: str, net, image: np.ndarray, matmul: float, repeats: int) -> dict:
    """Seconds, voxels/s, FLOP/s and share of the matmul roofline of every set-up."""
    import torch

    voxels = float(image.size)
    flops = network_flops_per_slice(net.cpu().float(), *image.shape[1:]) * image.shape[0]
    net = net.cuda().to(memory_format=torch.channels_last).eval()
    setups = {
        "legacy_bf16_b16": lambda: legacy_predict(net, image),
        "gpu_fp32_b16": lambda: gpu_predict(net, image, dtype=None, batch_size=16),
        "gpu_fp16_b16": lambda: gpu_predict(net, image, dtype=torch.float16, batch_size=16),
        "gpu_bf16_b8": lambda: gpu_predict(net, image, dtype=torch.bfloat16, batch_size=8),
        "gpu_bf16_b16": lambda: gpu_predict(net, image, dtype=torch.bfloat16, batch_size=16),
        "gpu_bf16_b32": lambda: gpu_predict(net, image, dtype=torch.bfloat16, batch_size=32),
    }

    def rates(seconds: float) -> dict:
        return {
            "seconds": seconds,
            "voxels_per_s": voxels / seconds,
            "flops_per_s": flops / seconds,
            "share_of_matmul": flops / seconds / matmul,
        }

    rows = {}
    for setup, run in setups.items():
        rows[setup] = rates(synchronised_seconds(run, repeats))
        print(name, setup, json.dumps(rows[setup]), flush=True)
    try:
        compiled = torch.compile(net)
        seconds = synchronised_seconds(
            lambda: gpu_predict(compiled, image, dtype=torch.bfloat16, batch_size=16), repeats
        )
        rows["gpu_bf16_b16_compiled"] = rates(seconds)
    except Exception as error:  # compile needs a working toolchain; report, don't fail
        rows["gpu_bf16_b16_compiled"] = {"error": f"{type(error).__name__}: {error}"[:300]}
    print(name, "compiled", json.dumps(rows["gpu_bf16_b16_compiled"]), flush=True)
    return {"gflops_per_slice": flops / image.shape[0] / 1e9, "setups": rows}


def pipeline_seconds(shape: tuple[int, int, int]) -> dict:
    """One timed ``segment`` run of a synthetic ``shape`` stack on CUDA after a small warm-up
    (kernel choice, loads), its seconds per stage, and the membrane stage of it alone."""
    import torch

    from napari_emseg._timing import record_stages
    from napari_emseg.datasets.synthetic import make_synthetic_stack
    from napari_emseg.evaluation.speed import SYNTHETIC_VOXEL_NM
    from napari_emseg.inference.membrane import build_model
    from napari_emseg.inference.tiled import predict_tiled
    from napari_emseg.models.cards import get_card
    from napari_emseg.pipeline import segment

    def run(image) -> None:
        segment(image, device="cuda", voxel_size=SYNTHETIC_VOXEL_NM)

    run(make_synthetic_stack((6, 256, 256), seed=1).image)
    image = make_synthetic_stack(shape, seed=0).image
    with record_stages() as stages:
        total = median_seconds(lambda: run(image), 1)
    net, normalised = build_model(get_card(None)), image.astype(np.float32) / 255
    membrane = synchronised_seconds(
        lambda: predict_tiled(
            net, normalised, device=torch.device("cuda"), tile=512, batch_size=32
        ),
        1,
    )
    return {
        "shape": list(shape),
        "pipeline_s": total,
        "stage_seconds": stages,
        "membrane_s": membrane,
    }
