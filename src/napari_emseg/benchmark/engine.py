"""``napari-emseg benchmark``: speed of the engine on this machine, as one JSON object.

Every figure is a median over repeats, measured on the project's synthetic stack, so runs on
different machines compare the same work. The dense matmul rate, measured in the same run on the
same device, is the roofline that the membrane network's FLOP rate is compared with.
"""

import contextlib
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

# The synthetic stack imitates ssTEM: 4 nm pixels, 50 nm sections.
SYNTHETIC_VOXEL_NM = (50.0, 4.0, 4.0)


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_flops_per_s(device, *, size: int = 1024, repeats: int = 5) -> float:
    """Dense float32 (bfloat16 on CUDA) matrix product rate: 2 n^3 FLOPs per product."""
    import torch

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    def run() -> None:
        (a @ b).sum().item()  # .item() waits for the device

    run()
    return 2 * size**3 / median_seconds(run, repeats)


def network_flops_per_slice(net, height: int, width: int) -> float:
    """FLOPs of one forward pass on a (height, width) slice, counted by torch, not estimated."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.zeros(1, 1, height, width))
    return float(counter.get_total_flops())


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024


def cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _propagation_seconds(method, image, reference, ref, membrane, device, repeats) -> float:
    """Median seconds of one propagator alone (no supervoxel vote) from the middle slice."""
    from napari_emseg.propagation import propagate

    def run() -> None:
        propagate(
            image,
            reference,
            ref,
            membrane=membrane,
            method=method,
            device=device,
            consistency="none",
            voxel_size=SYNTHETIC_VOXEL_NM,
        )

    return median_seconds(run, repeats)


def segment_stage_seconds(image, device: str, repeats: int) -> dict[str, float]:
    """Median seconds of each stage of ``segment`` with its defaults (a reference slice
    propagated by the learned propagator on thick sections): membrane, reference, propagation
    (the network), outline (the watersheds that place its outlines), vote."""
    from napari_emseg._timing import record_stages
    from napari_emseg.pipeline import segment

    runs = []
    for _ in range(repeats):
        with record_stages() as seconds:
            segment(image, device=device, voxel_size=SYNTHETIC_VOXEL_NM)
        runs.append(seconds)
    return {stage: statistics.median(run.get(stage, 0.0) for run in runs) for stage in runs[0]}


def run_benchmark(
    *,
    quick: bool = False,
    device: str = "auto",
    model: str | None = None,
    shape: tuple[int, int, int] | None = None,
    repeats: int | None = None,
    repropagation_shape: tuple[int, int, int] = (30, 512, 512),
) -> dict:
    """Measure the engine; ``quick`` uses a smaller stack and fewer repeats (< 2 min on 2 CPUs).

    Examples
    --------
    >>> result = run_benchmark(device="cpu", shape=(2, 64, 64), repeats=1,
    ...                        repropagation_shape=(3, 64, 64))
    >>> result["membrane_voxels_per_s"] > 0 and result["repropagate_one_object_s"] > 0
    True
    >>> sorted(result["stage_seconds"])
    ['membrane', 'outline', 'propagation', 'reference', 'vote']
    """
    import torch

    from napari_emseg.benchmark.proofreading import benchmark_repropagate_one_object
    from napari_emseg.datasets.synthetic import make_synthetic_stack
    from napari_emseg.inference.devices import resolve_device
    from napari_emseg.inference.membrane import build_model, predict_membrane
    from napari_emseg.models.cards import get_card

    torch_device = resolve_device(device)
    card = get_card(model)
    repeats = repeats or (3 if quick else 5)
    shape = shape or ((8, 512, 512) if quick else (30, 512, 512))
    stack = make_synthetic_stack(shape, seed=0)
    voxels = float(np.prod(shape))

    membrane_s = median_seconds(
        lambda: predict_membrane(stack.image, model=card, device=device), repeats
    )
    membrane = predict_membrane(stack.image, model=card, device=device)
    flops = None
    if card.needs_torch:
        flops = network_flops_per_slice(build_model(card), *shape[1:]) * shape[0] / membrane_s
    reference = np.zeros_like(stack.labels)
    middle = shape[0] // 2
    reference[middle] = stack.labels[middle]
    watershed_s = _propagation_seconds(
        "watershed", stack.image, reference, middle, membrane, device, repeats
    )
    learned_s = _propagation_seconds(
        "cconvlstm", stack.image, reference, middle, membrane, device, min(repeats, 3)
    )
    result = {
        "device": torch_device.type,
        "device_name": torch.cuda.get_device_name() if torch_device.type == "cuda" else cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "model": card.name,
        "stack": list(shape),
        "membrane_voxels_per_s": voxels / membrane_s,
        "membrane_flops_per_s": flops,
        "matmul_flops_per_s": matmul_flops_per_s(torch_device, repeats=repeats),
        # The two propagators alone (no vote): classical, and consistent ConvLSTM (STC).
        "watershed_voxels_per_s": voxels / watershed_s,
        "cconvlstm_voxels_per_s": voxels / learned_s,
        "cconvlstm_30x512x512_s": 30 * 512 * 512 * learned_s / voxels,
        "stage_seconds": segment_stage_seconds(stack.image, device, min(repeats, 3)),
        "repropagate_one_object_s": benchmark_repropagate_one_object(
            shape=repropagation_shape, repeats=repeats
        ),
        "peak_rss_mb": peak_rss_mb(),
        "repeats": repeats,
    }
    if torch_device.type == "cuda":
        result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result
