"""Compare single-block, blockwise and dask-distributed segmentation on real EM volumes.

    .venv/bin/python scripts/evaluate_blockwise.py [--data ../shared/data] [--workers 2]
        [--threads 1] [--cases CASE ...] [--json FILE]

Every mode runs as the ``napari-emseg segment`` command a user would type, in a child process
(with ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` set to ``--threads``, so that each process uses
that many cores whatever else the machine runs):

- ``single``: ``segment image.tif -o single.tif`` (the whole volume in memory, one reference slice);
- ``blockwise``: ``segment image.zarr -o blockwise.zarr --block ... --halo ...``, here, one block
  after the other, each from its own middle slice (``blockwise-z4``: the same with a thinner halo
  in z);
- ``blockwise-xy``: blocks that span the whole depth (halo 0 in z), so every block starts from the
  same middle slice as ``single``: what remains is the effect of cutting in y/x and stitching
  (``blockwise-xy96``: with a 96-pixel halo);
- ``distributed``: ``blockwise`` with ``--dask local --workers N`` (a LocalCluster of N processes).

For each it reports the wall time of the command (start-up included), the peak resident memory of
its largest process (exact: ``ru_maxrss`` of a wrapper's children) and of its whole process tree
(sampled every 0.05 s, so a short spike can be missed), the adapted Rand error (ARE) between the
modes' labels and against the ground truth. ``import-only`` is the command's start-up without
work (``segment --help``): the memory every process pays before it reads a voxel.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from napari_emseg.evaluation import data_dir, describe_machine
from napari_emseg.evaluation.machine import load_average
from napari_emseg.evaluation.processes import modes_table, run_measured, tiled, to_zarr
from napari_emseg.io import read_volume
from napari_emseg.metrics import adapted_rand_error

CLI = [sys.executable, "-m", "napari_emseg"]
CASES = {
    # image, ground truth, model (None: the default), tiles (y, x) and the blockwise layouts:
    # name -> (block, halo); "blockwise" is also the layout of the distributed run.
    "gala-default": {
        "image": "gala_fibsem_medulla/test-image.tif",
        "gt": "gala_fibsem_medulla/test-gt.tif",
        "model": "unet-w0.1875-isbi",  # the map docs/large-volumes.md was measured with
        "tiles": (1, 1),
        "layouts": {
            "blockwise": ((25, 100, 100), (8, 16, 16)),
            "blockwise-xy": ((50, 100, 100), (0, 16, 16)),
        },
    },
    "isbi-default": {
        "image": "isbi2012/train-volume.tif",
        "gt": "isbi2012/train-instances-3d.tif",
        "model": "unet-w0.1875-isbi",
        "tiles": (1, 1),
        "layouts": {
            "blockwise": ((15, 256, 256), (7, 32, 32)),
            "blockwise-z4": ((15, 256, 256), (4, 32, 32)),
            "blockwise-xy": ((30, 256, 256), (0, 32, 32)),
            "blockwise-xy96": ((30, 256, 256), (0, 96, 96)),
        },
    },
    # The same volume with the fast classical model, and tiled 2x2 in y and x (30x1024x1024):
    # four times the volume with the same blocks, for memory.
    "isbi-ridge": {
        "image": "isbi2012/train-volume.tif",
        "gt": "isbi2012/train-instances-3d.tif",
        "model": "ridge",
        "tiles": (1, 1),
        "layouts": {"blockwise": ((15, 256, 256), (7, 32, 32))},
    },
    "isbi-2x2-ridge": {
        "image": "isbi2012/train-volume.tif",
        "gt": "isbi2012/train-instances-3d.tif",
        "model": "ridge",
        "tiles": (2, 2),
        "layouts": {"blockwise": ((15, 256, 256), (7, 32, 32))},
    },
}


def evaluate_case(name: str, data: Path, workers: int, threads: int, work: Path) -> dict:
    case = CASES[name]
    volume = read_volume(data / case["image"])
    image = tiled(volume.data, case["tiles"])
    gt = tiled(tifffile.imread(data / case["gt"]).astype(np.uint32), case["tiles"], labels=True)
    image_tif = work / f"{name}-image.tif"
    tifffile.imwrite(image_tif, image, imagej=True, metadata={"axes": "ZYX"})
    image_zarr = work / f"{name}-image.zarr"
    to_zarr(image, image_zarr, volume.scale)
    model_args = ["--model", case["model"]] if case["model"] else []
    common = [*model_args, "--device", "cpu", "--quiet"]
    segment = [*CLI, "segment"]
    commands = {
        "import-only": [*segment, "--help"],
        "single": [*segment, str(image_tif), "-o", str(work / f"{name}-single.tif"), *common],
    }
    layouts = {**case["layouts"], "distributed": case["layouts"]["blockwise"]}
    for mode, (block, halo) in layouts.items():
        commands[mode] = [
            *segment, str(image_zarr), "-o", str(work / f"{name}-{mode}.zarr"), *common,
            "--block", *map(str, block), "--halo", *map(str, halo),
        ]  # fmt: skip
    commands["distributed"] += ["--dask", "local", "--workers", str(workers)]
    runs = {mode: run_measured(command, threads) for mode, command in commands.items()}
    labels = {
        mode: np.asarray(read_volume(command[command.index("-o") + 1], as_labels=True).data)
        for mode, command in commands.items()
        if mode != "import-only"
    }
    agreement = {
        f"{mode}_vs_single": round(adapted_rand_error(labels[mode], labels["single"]), 4)
        for mode in layouts
    }
    agreement["distributed_equals_blockwise"] = bool(
        np.array_equal(labels["distributed"], labels["blockwise"])
    )
    for mode, found in labels.items():
        runs[mode]["are_vs_gt"] = round(adapted_rand_error(found, gt), 4)
        runs[mode]["objects"] = int(np.unique(found).size - (found == 0).any())
        if mode in layouts:
            summary = json.loads(runs[mode]["stdout"])
            runs[mode]["blocks"] = summary["blocks"]
            runs[mode]["matched_pairs"] = summary["matched_pairs"]
            runs[mode]["block"], runs[mode]["halo"] = summary["block_shape"], summary["halo"]
    return {
        "case": name,
        "input": case["image"]
        + (f" tiled {case['tiles']} in y, x" if case["tiles"] != (1, 1) else ""),
        "shape": list(image.shape),
        "model": case["model"],
        "workers": workers,
        "threads_per_process": threads,
        "runs": {m: {k: v for k, v in r.items() if k != "stdout"} for m, r in runs.items()},
        "agreement": {
            k: (round(v, 4) if isinstance(v, float) else v) for k, v in agreement.items()
        },
        "commands": {
            mode: " ".join(c[3:]) for mode, c in commands.items() if mode != "import-only"
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="default: the shared data")
    parser.add_argument("--workers", type=int, default=2, help="processes of --dask local")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP/MKL threads per process (1: every mode uses one core per process)",
    )
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="emseg-blockwise-") as folder:
        results = [
            evaluate_case(case, data_dir(args.data), args.workers, args.threads, Path(folder))
            for case in args.cases
        ]
    machine, load = describe_machine(), load_average()
    print(f"Machine: {machine}; load average {load:.1f} at the end; {args.threads} thread(s)\n")
    print(modes_table(results))
    print()
    for result in results:
        print(f"{result['case']}:")
        for mode, command in result["commands"].items():
            print(f"  {mode}: napari-emseg {command}")
    if args.json:
        record = {"machine": machine, "load_average_at_end": load, "results": results}
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
