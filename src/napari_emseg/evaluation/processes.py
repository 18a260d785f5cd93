"""Commands measured as a user runs them: wall time and peak memory of a child process tree,
and the inputs the blockwise measurements feed them (volumes tiled larger, Zarr copies)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from napari_emseg.evaluation.report import markdown_table

# The wrapper runs a command and prints the largest peak RSS (KiB) among the processes it waited
# for, i.e. the command and every child the command itself waited for.
WRAPPER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(code)"
)


def run_measured(command: list[str], threads: int = 1, *, poll_s: float = 0.05) -> dict:
    """Run ``command`` with ``threads`` OpenMP/MKL threads per process.

    Returns its wall seconds, the peak RSS of its largest process (exact: ``ru_maxrss`` of the
    wrapper's children) and of its whole process tree (sampled every ``poll_s``, so a short
    spike can be missed), in MB, and the last line of its standard output. A failing command
    raises ``RuntimeError`` with the end of its standard error.

    Examples
    --------
    >>> import sys
    >>> run = run_measured([sys.executable, "-c", "print('done')"])
    >>> run["stdout"], run["peak_rss_mb"] > 0
    ('done', True)
    """
    import psutil

    start = time.perf_counter()
    limits = {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    process = psutil.Popen(
        [sys.executable, "-c", WRAPPER, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **limits},
    )
    tree_peak = 0
    while process.poll() is None:
        try:
            members = process.children(recursive=True)
            tree = sum(p.memory_info().rss for p in members)  # the wrapper itself left out
        except psutil.Error:
            tree = 0
        tree_peak = max(tree_peak, tree)
        time.sleep(poll_s)
    seconds = time.perf_counter() - start
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err[-3000:]}")
    largest_kib = int(err.strip().splitlines()[-1])
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(largest_kib / 1024, 1),
        "tree_peak_rss_mb": round(tree_peak / 2**20, 1),
        "stdout": out.strip().splitlines()[-1] if out.strip() else "",
    }


def tiled(volume: np.ndarray, tiles: tuple[int, int], *, labels: bool = False) -> np.ndarray:
    """``volume`` repeated ``tiles`` times in y and x; label ids stay distinct between tiles.

    Examples
    --------
    >>> ids = np.array([[[0, 1]]])
    >>> tiled(ids, (1, 2), labels=True).tolist()
    [[[0, 1, 0, 3]]]
    >>> tiled(ids, (2, 1)).shape
    (1, 2, 2)
    """
    rows = []
    for ty in range(tiles[0]):
        row = []
        for tx in range(tiles[1]):
            offset = (ty * tiles[1] + tx) * (int(volume.max()) + 1) if labels else 0
            row.append(np.where(volume > 0, volume + offset, 0) if labels else volume)
        rows.append(np.concatenate(row, axis=2))
    return np.concatenate(rows, axis=1)


def to_zarr(image: np.ndarray, path: str | Path, scale: tuple[float, float, float] | None) -> None:
    """``image`` as a Zarr array with its voxel size in nm (``resolution``; none when None), a
    blockwise input."""
    import zarr

    array = zarr.open_array(
        str(path), mode="w", shape=image.shape, chunks=(8, 128, 128), dtype=image.dtype
    )
    array[...] = image
    if scale is not None:
        array.attrs["resolution"] = list(scale)


def modes_table(results: list[dict]) -> str:
    """Each case's modes (``runs``: seconds, memory, blocks, objects, ARE) and how they agree
    (``agreement``: ARE against the single run, distributed equal to blockwise), in markdown.

    Examples
    --------
    >>> run = {"seconds": 2.0, "peak_rss_mb": 300.0, "tree_peak_rss_mb": 310.0}
    >>> result = {"case": "isbi", "runs": {"single": run, "import-only": run},
    ...           "agreement": {"distributed_equals_blockwise": True}}
    >>> print(modes_table([result]).splitlines()[2])
    | isbi | single |  | 2.0 | 300.0 | 310.0 |  |  |  |  |
    """
    header = [
        "case", "mode", "block / halo", "seconds", "peak RSS, largest process (MB)",
        "peak RSS, all processes (MB)", "blocks", "objects", "ARE vs ground truth",
        "ARE vs single",
    ]  # fmt: skip
    rows = []
    for result in results:
        for mode, run in result["runs"].items():
            layout = f"{run['block']} / {run['halo']}" if "block" in run else ""
            versus = result["agreement"].get(f"{mode}_vs_single", "")
            rows.append(
                [result["case"], mode, layout, run["seconds"], run["peak_rss_mb"]]
                + [run["tree_peak_rss_mb"], run.get("blocks", ""), run.get("objects", "")]
                + [run.get("are_vs_gt", ""), versus]
            )
    equal = ", ".join(
        f"{r['case']}: {r['agreement']['distributed_equals_blockwise']}" for r in results
    )
    lines = [
        *markdown_table(header, rows),
        "",
        f"Distributed labels identical to blockwise: {equal}",
    ]
    return "\n".join(lines)


def commands_text(results: list[dict]) -> str:
    """Each case's commands, as a user types them.

    Examples
    --------
    >>> print(commands_text([{"case": "isbi", "commands": {"single": "segment a.tif"}}]))
    isbi:
      single: napari-emseg segment a.tif
    """
    lines = []
    for result in results:
        lines.append(f"{result['case']}:")
        lines += [f"  {mode}: napari-emseg {c}" for mode, c in result["commands"].items()]
    return "\n".join(lines)
