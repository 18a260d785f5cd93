"""``napari-emseg benchmark``: speed of the engine on this machine, as one JSON object.

Every figure is a median over repeats, measured on the project's synthetic stack, so runs on
different machines compare the same work. The dense matmul rate, measured in the same run on the
same device, is the roofline that the membrane network's FLOP rate is compared with. The user
cases (``cases``: ``segment`` and ``propagate`` through the facade, as the CLI and the widgets
call them) each run in a child process, so their peak memory is theirs alone.
"""

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
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


def _propagation_seconds(
    method, image, reference, ref, membrane, device, repeats, voxel_size=SYNTHETIC_VOXEL_NM
) -> float:
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
            voxel_size=voxel_size,
        )

    return median_seconds(run, repeats)


def propagator_rates(stack, membrane, device: str, repeats: int) -> dict[str, float]:
    """Voxels per second of the classical and the learned propagator alone (no vote) through
    ``stack`` from its middle slice's ground truth, and the learned one's share of the
    classical one's rate (the issue's target: at least 0.5)."""
    reference = np.zeros_like(stack.labels)
    middle = stack.labels.shape[0] // 2
    reference[middle] = stack.labels[middle]
    voxels = float(stack.labels.size)
    args = (stack.image, reference, middle, membrane, device)
    watershed_s = _propagation_seconds("watershed", *args, repeats, stack.scale)
    learned_s = _propagation_seconds("cconvlstm", *args, min(repeats, 3), stack.scale)
    return {
        "watershed_voxels_per_s": voxels / watershed_s,
        "cconvlstm_voxels_per_s": voxels / learned_s,
        "cconvlstm_to_watershed": watershed_s / learned_s,
    }


# The stages a user waits through, from the names the engine times (``_timing.timed``).
STAGE_GROUPS = {
    "membrane": ("membrane",),
    "start": ("reference", "agglomeration"),
    "calibration": ("calibration",),
    "propagation": ("propagation", "carry", "outline"),
    "vote": ("vote",),
}


def stage_split(seconds: dict[str, float]) -> dict[str, float]:
    """Seconds per user-facing stage (:data:`STAGE_GROUPS`); stages named nowhere go to
    ``other``, and stages that took no time are left out.

    Examples
    --------
    >>> stage_split({"membrane": 2.0, "reference": 0.5, "outline": 1.0, "propagation": 3.0})
    {'membrane': 2.0, 'start': 0.5, 'propagation': 4.0}
    """
    named = {stage: group for group, stages in STAGE_GROUPS.items() for stage in stages}
    split: dict[str, float] = {}
    for stage, value in seconds.items():
        group = named.get(stage, "other")
        split[group] = split.get(group, 0.0) + value
    return {group: value for group, value in split.items() if value > 0}


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


# The user cases: what runs, the synthetic stack's shape, its in-plane pixel (nm) and,
# where not 50 nm, its sections (nm): sections as thin as the pixels make a FIB-SEM stack.
CASES = {
    "segment_60x250x250_10nm": ("segment", (60, 250, 250), 10.0),
    "propagate_60x250x250_10nm": ("propagate", (60, 250, 250), 10.0),
    "segment_30x512x512_4nm": ("segment", (30, 512, 512), 4.0),
    "segment_60x250x250_10nm_fibsem": ("segment", (60, 250, 250), 10.0, 10.0),
}


def run_case(
    what: str,
    shape,
    pixel_nm: float,
    *,
    section_nm: float = 50.0,
    device: str = "auto",
    repeats: int = 1,
) -> dict:
    """Time ``segment``, or ``propagate`` from the middle slice's ground truth (the membrane
    predicted too, as for a user), through the facade on the synthetic stack imaged at
    ``pixel_nm`` with ``section_nm`` sections
    (:func:`~napari_emseg.datasets.synthetic.make_synthetic_stack_at`; sections as thin as the
    pixels make it a FIB-SEM stack).

    Returns the median and first seconds (the first run loads the networks), the method, the
    median seconds per stage and per user-facing stage (:func:`stage_split`), and this process's
    peak RSS in MB: run it in a process of its own (:func:`measure_case`).

    Examples
    --------
    >>> case = run_case("propagate", (3, 64, 64), 10.0, device="cpu")
    >>> case["seconds"] > 0 and case["method"] in ("watershed", "cconvlstm", "agglomeration")
    True
    """
    from napari_emseg._timing import record_stages
    from napari_emseg.datasets.synthetic import make_synthetic_stack_at
    from napari_emseg.pipeline import propagate, segment

    if what not in ("segment", "propagate"):
        raise ValueError(f"unknown case {what!r}: segment or propagate")
    stack = make_synthetic_stack_at(tuple(shape), pixel_nm, section_nm=section_nm, seed=0)
    middle = stack.labels.shape[0] // 2
    labels = np.zeros_like(stack.labels)
    labels[middle] = stack.labels[middle]
    runs, method = [], None
    for _ in range(max(1, repeats)):
        with record_stages() as stages:
            start = time.perf_counter()
            if what == "segment":
                method = segment(stack.image, device=device, voxel_size=stack.scale).method
            else:
                result = propagate(
                    stack.image, labels, middle, device=device, voxel_size=stack.scale
                )
                method = result.method
            seconds = time.perf_counter() - start
        runs.append((seconds, dict(stages)))
    names = {stage for _, stages in runs for stage in stages}
    stages = {n: statistics.median(run.get(n, 0.0) for _, run in runs) for n in sorted(names)}
    return {
        "seconds": statistics.median(s for s, _ in runs),
        "first_s": runs[0][0],
        "method": method,
        "stage_seconds": stages,
        "stage_split": stage_split(stages),
        "peak_rss_mb": peak_rss_mb(),
        "repeats": len(runs),
    }


def measure_case(name: str, *, device: str = "auto", repeats: int = 1) -> dict:
    """:func:`run_case` of one of :data:`CASES` in a child process (its own peak memory)."""
    if name not in CASES:
        raise ValueError(f"unknown case {name!r}; choose one of: {', '.join(CASES)}")
    what, shape, pixel, *section = CASES[name]
    command = [sys.executable, "-m", "napari_emseg.evaluation.speed", what, *map(str, shape)]
    command += [str(pixel), "--device", device, "--repeats", str(repeats)]
    command += ["--section-nm", str(section[0])] if section else []
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"benchmark case {name} failed: {last}")
    return {"case": name, **json.loads(done.stdout.strip().splitlines()[-1])}


def run_benchmark(
    *,
    quick: bool = False,
    device: str = "auto",
    model: str | None = None,
    shape: tuple[int, int, int] | None = None,
    repeats: int | None = None,
    repropagation_shape: tuple[int, int, int] = (30, 512, 512),
    cases: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict:
    """Measure the engine; ``quick`` uses a smaller stack and fewer repeats.

    ``cases`` adds the user cases (:data:`CASES`, one child process each: ``cases`` in the
    result) and the two propagators on the 10 nm stack; ``progress(done, total, message)``
    hears of each measurement as it starts.

    Examples
    --------
    >>> result = run_benchmark(device="cpu", shape=(2, 64, 64), repeats=1,
    ...                        repropagation_shape=(3, 64, 64), cases=False)
    >>> result["membrane_voxels_per_s"] > 0 and result["repropagate_one_object_s"] > 0
    True
    >>> sorted(result["stage_split"])
    ['membrane', 'propagation', 'start', 'vote']
    """
    import torch

    from napari_emseg.datasets.synthetic import make_synthetic_stack, make_synthetic_stack_at
    from napari_emseg.evaluation.proofreading_speed import benchmark_repropagate_one_object
    from napari_emseg.inference.devices import autocast_dtype, resolve_device
    from napari_emseg.inference.membrane import build_model, predict_membrane
    from napari_emseg.models.cards import get_card

    steps = ["membrane", "propagators", "segment stages", "repropagation"]
    if cases:
        steps += ["propagators at 10 nm", *CASES]

    def step(name: str) -> None:
        if progress is not None:
            progress(steps.index(name), len(steps), f"benchmark: {name}")

    torch_device = resolve_device(device)
    card = get_card(model)
    repeats = repeats or (3 if quick else 5)
    shape = shape or ((8, 512, 512) if quick else (30, 512, 512))
    stack = make_synthetic_stack(shape, seed=0)
    voxels = float(np.prod(shape))
    pixel = SYNTHETIC_VOXEL_NM[-1]

    step("membrane")
    membrane_s = median_seconds(
        lambda: predict_membrane(stack.image, model=card, device=device, pixel_nm=pixel), repeats
    )
    membrane = predict_membrane(stack.image, model=card, device=device, pixel_nm=pixel)
    flops = None
    if card.needs_torch:
        flops = network_flops_per_slice(build_model(card), *shape[1:]) * shape[0] / membrane_s
    step("propagators")
    rates = propagator_rates(stack, membrane, device, repeats)
    step("segment stages")
    stages = segment_stage_seconds(stack.image, device, min(repeats, 3))
    precision = autocast_dtype(torch_device)
    result = {
        "device": torch_device.type,
        "device_name": torch.cuda.get_device_name() if torch_device.type == "cuda" else cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "precision": "float32" if precision is None else str(precision).removeprefix("torch."),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "model": card.name,
        "stack": list(shape),
        "membrane_voxels_per_s": voxels / membrane_s,
        "membrane_flops_per_s": flops,
        "matmul_flops_per_s": matmul_flops_per_s(torch_device, repeats=repeats),
        # The two propagators alone (no vote): classical, and consistent ConvLSTM (STC).
        **rates,
        "cconvlstm_30x512x512_s": 30 * 512 * 512 / rates["cconvlstm_voxels_per_s"],
        "stage_seconds": stages,
        "stage_split": stage_split(stages),
    }
    step("repropagation")
    result["repropagate_one_object_s"] = benchmark_repropagate_one_object(
        shape=repropagation_shape, repeats=repeats
    )
    if cases:
        step("propagators at 10 nm")
        fib = make_synthetic_stack_at((60, 250, 250), 10.0, seed=0)
        fib_membrane = predict_membrane(fib.image, device=device, pixel_nm=10.0)
        result["propagators_60x250x250_10nm"] = propagator_rates(
            fib, fib_membrane, device, min(repeats, 3)
        )
        result["cases"] = {}
        for name in CASES:
            step(name)
            case_repeats = 1 if quick else 3
            result["cases"][name] = measure_case(name, device=device, repeats=case_repeats)
        result["peak_rss_mb_cases"] = max(c["peak_rss_mb"] for c in result["cases"].values())
    result["peak_rss_mb"] = peak_rss_mb()
    result["repeats"] = repeats
    if torch_device.type == "cuda":
        result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if progress is not None:
        progress(len(steps), len(steps), "benchmark: done")
    return result


def _main(argv: list[str] | None = None) -> int:
    """``python -m napari_emseg.evaluation.speed WHAT Z Y X PIXEL_NM [--section-nm S]``:
    :func:`run_case`, its JSON on one line."""
    import argparse

    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("what", help="segment or propagate")
    parser.add_argument("shape", type=int, nargs=3, metavar=("Z", "Y", "X"))
    parser.add_argument("pixel_nm", type=float)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--section-nm", type=float, default=50.0)
    args = parser.parse_args(argv)
    case = run_case(
        args.what,
        args.shape,
        args.pixel_nm,
        section_nm=args.section_nm,
        device=args.device,
        repeats=args.repeats,
    )
    print(json.dumps(case))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
