"""GPU efficiency of membrane inference and the full pipeline; prints one JSON object.

    python scripts/benchmark_gpu.py [--depth 30] [--pipeline-depth 100] [--size 1024] [-o out.json]

Measured on one CUDA device (medians of repeats after a warm-up):

- ``matmul_bf16_flops_per_s``: an 8192^3 bf16 matrix product, the roofline;
- membrane inference of a ``depth`` x ``size`` x ``size`` stack for several set-ups:
  ``legacy`` (tiles stacked on the CPU, one synchronous copy each way per batch, blended on the
  CPU: the code before the GPU path), and the GPU path of ``predict_tiled`` with float32, fp16
  and bf16 autocast, batch sizes, and ``torch.compile``. Each gives voxels/s and the model FLOP
  rate as a share of the matmul roofline;
- ``pipeline_s``: ``pipeline.segment`` (membrane, reference watershed, consistent ConvLSTM) on a
  synthetic ``pipeline-depth`` x ``size`` x ``size`` stack, one run after a small warm-up, with
  its membrane stage timed alone.
"""

import argparse
import json

import numpy as np
import torch

from napari_emseg.benchmark.engine import median_seconds, network_flops_per_slice
from napari_emseg.inference.membrane import build_model
from napari_emseg.inference.tiled import pad_to, predict_on_gpu, predict_tiled
from napari_emseg.inference.tiling import TileGrid
from napari_emseg.models import build_network
from napari_emseg.models.cards import get_card


def timed(run, repeats: int) -> float:
    """Median seconds of ``run`` after one warm-up, waiting for the GPU each time."""

    def synchronised() -> None:
        run()
        torch.cuda.synchronize()

    synchronised()
    return median_seconds(synchronised, repeats)


def matmul_rate(repeats: int) -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    return 2 * 8192**3 / timed(lambda: a @ b, repeats)


@torch.inference_mode()
def legacy_predict(net, image, *, tile=512, overlap=32, batch_size=16):
    """The pre-GPU-path loop: CPU tiles, synchronous copies, CPU blending."""
    halo = overlap // 2
    depth, height, width = image.shape
    grid = TileGrid.plan(
        height + 2 * halo, width + 2 * halo, tile=tile, overlap=overlap, divisor=16
    )
    ph, pw = max(height + 2 * halo, grid.tile_y), max(width + 2 * halo, grid.tile_x)
    weights = grid.weights(overlap)
    out = np.zeros((depth, ph, pw), np.float32)
    norm = np.zeros_like(out)
    jobs = [(z, y, x) for z in range(depth) for y, x in grid.positions()]
    for first in range(0, len(jobs), batch_size):
        batch = jobs[first : first + batch_size]
        tiles = []
        for z, y, x in batch:
            padded = pad_to(image[z], ph - 2 * halo, pw - 2 * halo, halo)
            tiles.append(padded[y : y + grid.tile_y, x : x + grid.tile_x])
        inputs = torch.from_numpy(np.stack(tiles)[:, None]).cuda()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            probs = torch.sigmoid(net(inputs).float())[:, 0].cpu().numpy()
        for (z, y, x), prob in zip(batch, probs, strict=True):
            out[z, y : y + grid.tile_y, x : x + grid.tile_x] += prob * weights
            norm[z, y : y + grid.tile_y, x : x + grid.tile_x] += weights
    return out / np.maximum(norm, 1e-6)


@torch.inference_mode()
def gpu_predict(net, image, *, dtype, batch_size, tile=512, overlap=32):
    halo = overlap // 2
    depth, height, width = image.shape
    grid = TileGrid.plan(
        height + 2 * halo, width + 2 * halo, tile=tile, overlap=overlap, divisor=16
    )
    padded = (max(height + 2 * halo, grid.tile_y), max(width + 2 * halo, grid.tile_x))
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


def membrane_rows(name, net, image, matmul, repeats):
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
    rows = {}
    for setup, run in setups.items():
        seconds = timed(run, repeats)
        rows[setup] = {
            "seconds": seconds,
            "voxels_per_s": voxels / seconds,
            "flops_per_s": flops / seconds,
            "share_of_matmul": flops / seconds / matmul,
        }
        print(name, setup, json.dumps(rows[setup]), flush=True)
    try:
        compiled = torch.compile(net)
        seconds = timed(
            lambda: gpu_predict(compiled, image, dtype=torch.bfloat16, batch_size=16), repeats
        )
        rows["gpu_bf16_b16_compiled"] = {
            "seconds": seconds,
            "voxels_per_s": voxels / seconds,
            "flops_per_s": flops / seconds,
            "share_of_matmul": flops / seconds / matmul,
        }
    except Exception as error:  # compile needs a working toolchain; report, don't fail
        rows["gpu_bf16_b16_compiled"] = {"error": f"{type(error).__name__}: {error}"[:300]}
    print(name, "compiled", json.dumps(rows["gpu_bf16_b16_compiled"]), flush=True)
    return {"gflops_per_slice": flops / image.shape[0] / 1e9, "setups": rows}


def pipeline_seconds(shape):
    """One timed ``segment`` run of ``shape`` after a small warm-up run (kernel choice, loads),
    its seconds per stage, and the membrane stage of it alone."""
    from napari_emseg._timing import record_stages
    from napari_emseg.benchmark.engine import SYNTHETIC_VOXEL_NM
    from napari_emseg.datasets.synthetic import make_synthetic_stack
    from napari_emseg.pipeline import segment

    def run(image) -> None:
        segment(image, device="cuda", voxel_size=SYNTHETIC_VOXEL_NM)

    run(make_synthetic_stack((6, 256, 256), seed=1).image)
    image = make_synthetic_stack(shape, seed=0).image
    with record_stages() as stages:
        total = median_seconds(lambda: run(image), 1)
    net, normalised = build_model(get_card(None)), image.astype(np.float32) / 255
    membrane = timed(
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=30, help="slices of the inference stack")
    parser.add_argument("--pipeline-depth", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-o", "--output", help="also write the JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU")
    matmul = matmul_rate(args.repeats * 3)
    image = np.random.default_rng(0).random((args.depth, args.size, args.size), dtype=np.float32)
    card = get_card(None)
    result = {
        "device_name": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "matmul_bf16_flops_per_s": matmul,
        "membrane": {
            card.name: membrane_rows(card.name, build_model(card), image, matmul, args.repeats),
            "fusionnet-w1 (random weights)": membrane_rows(
                "fusionnet-w1",
                build_network("fusionnet", width=1.0, depth=4),
                image,
                matmul,
                args.repeats,
            ),
        },
    }
    print(json.dumps(result), flush=True)
    result["pipeline"] = pipeline_seconds((args.pipeline_depth, args.size, args.size))
    result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
