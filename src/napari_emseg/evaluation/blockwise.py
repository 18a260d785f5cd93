"""Blockwise segmentation measured against one whole run: the modes a user types
(docs/large-volumes.md, each as a child process) and blocks that cut z, chained or not
(docs/results/chained-blockwise.md).

Every mode runs as the ``napari-emseg segment`` command a user would type, in a child process
(with ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` set, so that each process uses that many cores
whatever else the machine runs):

- ``single``: ``segment image.tif -o single.tif`` (the whole volume in memory, one reference
  slice);
- ``blockwise``: ``segment image.zarr -o blockwise.zarr --block ... --halo ...``, one block
  after the other, each from its own middle slice (``blockwise-z4``: the same with a thinner
  halo in z);
- ``blockwise-xy``: blocks that span the whole depth (halo 0 in z), so every block starts from
  the same middle slice as ``single``: what remains is the effect of cutting in y/x and
  stitching (``blockwise-xy96``: with a 96-pixel halo);
- ``distributed``: ``blockwise`` with ``--dask local --workers N`` (a LocalCluster of N
  processes).

For each: the wall time of the command (start-up included), the peak resident memory of its
largest process (exact: ``ru_maxrss`` of a wrapper's children) and of its whole process tree
(sampled every 0.05 s, so a short spike can be missed), the adapted Rand error (ARE) between the
modes' labels and against the ground truth. ``import-only`` is the command's start-up without
work (``segment --help``): the memory every process pays before it reads a voxel.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_emseg.evaluation.data import Block
from napari_emseg.evaluation.report import table_row
from napari_emseg.metrics import adapted_rand_error

CLI = [sys.executable, "-m", "napari_emseg"]
ISBI_FILES = ("isbi2012/train-volume.tif", "isbi2012/train-instances-3d.tif")
ISBI_LAYOUT = ((15, 256, 256), (7, 32, 32))
# name -> image, ground truth, model (None: the default), tiles (y, x) and the blockwise layouts
# (mode -> (block, halo)); "blockwise" is also the layout of the distributed run.
CASES = {
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
    # The default network at the stack's own resolution: the agglomeration start as one merge
    # tree over all blocks (blockwise/agglomeration.py).
    "gala-native": {
        "image": "gala_fibsem_medulla/test-image.tif",
        "gt": "gala_fibsem_medulla/test-gt.tif",
        "model": None,
        "tiles": (1, 1),
        "layouts": {
            "blockwise": ((25, 64, 128), (8, 32, 32)),
            "blockwise-xy": ((50, 64, 128), (0, 32, 32)),
        },
    },
    "isbi-default": {
        "image": ISBI_FILES[0],
        "gt": ISBI_FILES[1],
        "model": "unet-w0.1875-isbi",
        "tiles": (1, 1),
        "layouts": {
            "blockwise": ISBI_LAYOUT,
            "blockwise-z4": ((15, 256, 256), (4, 32, 32)),
            "blockwise-xy": ((30, 256, 256), (0, 32, 32)),
            "blockwise-xy96": ((30, 256, 256), (0, 96, 96)),
        },
    },
    # The same volume with the fast classical model, and tiled 2x2 in y and x (30x1024x1024):
    # four times the volume with the same blocks, for memory.
    "isbi-ridge": {
        "image": ISBI_FILES[0],
        "gt": ISBI_FILES[1],
        "model": "ridge",
        "tiles": (1, 1),
        "layouts": {"blockwise": ISBI_LAYOUT},
    },
    "isbi-2x2-ridge": {
        "image": ISBI_FILES[0],
        "gt": ISBI_FILES[1],
        "model": "ridge",
        "tiles": (2, 2),
        "layouts": {"blockwise": ISBI_LAYOUT},
    },
}


def mode_commands(
    name: str, case: dict, image_tif: Path, image_zarr: Path, work: Path, *, workers: int
) -> dict[str, list[str]]:
    """The ``napari-emseg segment`` command of every mode: ``import-only`` (``--help``),
    ``single`` (the TIFF in memory), each blockwise layout on the Zarr copy, and
    ``distributed`` (the ``blockwise`` layout on a local Dask cluster of ``workers``).

    Examples
    --------
    >>> case = {"model": "ridge", "layouts": {"blockwise": ((4, 8, 8), (1, 2, 2))}}
    >>> commands = mode_commands("c", case, Path("i.tif"), Path("i.zarr"), Path("w"), workers=2)
    >>> list(commands)
    ['import-only', 'single', 'blockwise', 'distributed']
    >>> " ".join(commands["distributed"][3:7])
    'segment i.zarr -o w/c-distributed.zarr'
    >>> commands["distributed"][-8:]
    ['--halo', '1', '2', '2', '--dask', 'local', '--workers', '2']
    """
    model = ["--model", case["model"]] if case["model"] else []
    common = [*model, "--device", "cpu", "--quiet"]
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
    return commands


def agreement(labels: dict[str, np.ndarray], modes) -> dict[str, float | bool]:
    """ARE of each blockwise mode against ``single``, and whether ``distributed`` equals
    ``blockwise`` voxel for voxel.

    Examples
    --------
    >>> a = np.array([[[1, 1, 2, 2]]]); b = np.array([[[1, 1, 1, 1]]])
    >>> found = agreement({"single": a, "blockwise": a, "distributed": b}, ["blockwise"])
    >>> found["blockwise_vs_single"], found["distributed_equals_blockwise"]
    (0.0, False)
    """
    found: dict[str, float | bool] = {
        f"{mode}_vs_single": round(float(adapted_rand_error(labels[mode], labels["single"])), 4)
        for mode in modes
    }
    found["distributed_equals_blockwise"] = bool(
        np.array_equal(labels["distributed"], labels["blockwise"])
    )
    return found


def evaluate_case(name: str, data: Path, workers: int, threads: int, work: Path) -> dict:
    """Run every mode of ``CASES[name]`` as a measured child process
    (:func:`~.processes.run_measured`) and score the labels each wrote."""
    import tifffile

    from napari_emseg.evaluation.processes import run_measured, tiled, to_zarr
    from napari_emseg.io import read_volume

    case = CASES[name]
    volume = read_volume(data / case["image"])
    image = tiled(volume.data, case["tiles"])
    gt = tiled(tifffile.imread(data / case["gt"]).astype(np.uint32), case["tiles"], labels=True)
    image_tif, image_zarr = work / f"{name}-image.tif", work / f"{name}-image.zarr"
    # Both inputs say the same about the voxel size: the file's, or nothing (then estimated).
    known = volume.unit == "nm"
    metadata = {"axes": "ZYX", **({"spacing": volume.scale[0], "unit": "nm"} if known else {})}
    resolution = (1 / volume.scale[1], 1 / volume.scale[2]) if known else None
    tifffile.imwrite(image_tif, image, imagej=True, resolution=resolution, metadata=metadata)
    to_zarr(image, image_zarr, volume.scale if known else None)
    commands = mode_commands(name, case, image_tif, image_zarr, work, workers=workers)
    runs = {mode: run_measured(command, threads) for mode, command in commands.items()}
    labels = {
        mode: np.asarray(read_volume(command[command.index("-o") + 1], as_labels=True).data)
        for mode, command in commands.items()
        if mode != "import-only"
    }
    blockwise_modes = [*case["layouts"], "distributed"]
    for mode, found in labels.items():
        runs[mode]["are_vs_gt"] = round(adapted_rand_error(found, gt), 4)
        runs[mode]["objects"] = int(np.unique(found).size - (found == 0).any())
        if mode in blockwise_modes:
            summary = json.loads(runs[mode]["stdout"])
            runs[mode]["blocks"] = summary["blocks"]
            runs[mode]["matched_pairs"] = summary["matched_pairs"]
            runs[mode]["block"], runs[mode]["halo"] = summary["block_shape"], summary["halo"]
    tiles = f" tiled {case['tiles']} in y, x" if case["tiles"] != (1, 1) else ""
    return {
        "case": name,
        "input": case["image"] + tiles,
        "shape": list(image.shape),
        "model": case["model"],
        "workers": workers,
        "threads_per_process": threads,
        "runs": {m: {k: v for k, v in r.items() if k != "stdout"} for m, r in runs.items()},
        "agreement": agreement(labels, blockwise_modes),
        "commands": {m: " ".join(c[3:]) for m, c in commands.items() if m != "import-only"},
    }


def chained_rows(
    name: str, block: Block, block_shape, halos, methods=("watershed", "cconvlstm")
) -> list[str]:
    """Markdown rows: ``segment --start watershed`` on the whole block, then blockwise with
    blocks of ``block_shape`` (whole y/x, so only the z cut differs), chained for every z halo
    in ``halos`` and, for the first, each block restarted from its own middle slice. Each row
    gives the ARE against the whole run and against the ground truth, and the seconds."""
    from napari_emseg import pipeline
    from napari_emseg.blockwise.run import segment_blockwise
    from napari_emseg.io import read_volume

    rows = []
    for method in methods:
        started = time.perf_counter()
        whole = pipeline.segment(
            block.image, voxel_size=block.voxel_size, start="watershed", propagation=method
        ).labels
        seconds = time.perf_counter() - started
        gt_are = f"{adapted_rand_error(whole, block.gt):.3f}"
        rows.append(
            table_row([name, method, "whole volume", "one run", 0, gt_are, f"{seconds:.0f}"])
        )
        print(rows[-1], flush=True)
        for halo, chain in [(halo, True) for halo in halos] + [(halos[0], False)]:
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                segment_blockwise(
                    block.image,
                    f"{folder}/labels.zarr",
                    block_shape=block_shape,
                    halo=halo,
                    propagation=method,
                    start="watershed",
                    scale=block.voxel_size,
                    unit="nm",
                    chain=chain,
                )
                seconds = time.perf_counter() - started
                labels = read_volume(f"{folder}/labels.zarr", as_labels=True).data
            layout = f"{' '.join(map(str, block_shape))} ({' '.join(map(str, halo))})"
            mode = "chained" if chain else "each block from its middle slice"
            versus = [f"{adapted_rand_error(labels, ref):.3f}" for ref in (whole, block.gt)]
            rows.append(table_row([name, method, layout, mode, *versus, f"{seconds:.0f}"]))
            print(rows[-1], flush=True)
    return rows
