"""docs/results/chained-blockwise.md: blocks that cut z, chained or not, against one whole run.

    .venv/bin/python scripts/evaluate_chained_blockwise.py [--only "ISBI 0-29:cconvlstm" ...]

On the gala FIB-SEM *test* block (50x100x200, 10 nm) and ISBI 2012 slices 0-29 (4x4x50 nm),
`segment` from a reference slice (start ``watershed``) on the whole volume, and blockwise with
blocks that cut z (whole y/x, so only the z cut differs), chained (the default) and not. The
adapted Rand error between each blockwise result and the whole-volume run measures the
consistency (target <= 0.02); against the ground truth, the accuracy.
"""

import argparse
import tempfile
import time
from pathlib import Path

from napari_emseg import pipeline
from napari_emseg.blockwise.run import segment_blockwise
from napari_emseg.evaluation import describe_machine, gala_block, isbi_block, write_report
from napari_emseg.io import read_volume
from napari_emseg.metrics import adapted_rand_error

REPO = Path(__file__).resolve().parents[1]
# volume -> (block, its block shape for blockwise runs, z halos: the first also unchained)
CASES = {
    "ISBI 0-29": (lambda: isbi_block(0, 30), (10, 512, 512), [(2, 0, 0)]),
    # the second halo: the CLI's default z halo
    "gala test": (lambda: gala_block("test"), (16, 100, 200), [(4, 0, 0), (8, 0, 0)]),
}
METHODS = ("watershed", "cconvlstm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="+", metavar="VOLUME:METHOD", help="run only these (rows printed)"
    )
    only = parser.parse_args().only
    lines = [
        "# Blocks that cut z: chained against one whole-volume run",
        "",
        "Made by `.venv/bin/python scripts/evaluate_chained_blockwise.py` on "
        f"{describe_machine()}. `segment --start watershed` from the middle "
        "slice; blockwise blocks span the whole y/x, so only the z cut differs. "
        "ARE vs whole: adapted Rand error between the blockwise and the whole-volume labels "
        "(target <= 0.02); ARE vs GT: against the ground truth.",
        "",
        "| volume | propagation | block (halo) | mode | ARE vs whole | ARE vs GT | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (load, block, halos) in CASES.items():
        volume = load()
        image, gt, voxel = volume.image, volume.gt, volume.voxel_size
        for method in METHODS:
            if only and f"{name}:{method}" not in only:
                continue
            started = time.perf_counter()
            whole = pipeline.segment(
                image, voxel_size=voxel, start="watershed", propagation=method
            ).labels
            seconds = time.perf_counter() - started
            lines.append(
                f"| {name} | {method} | whole volume | one run | 0 | "
                f"{adapted_rand_error(whole, gt):.3f} | {seconds:.0f} |"
            )
            print(lines[-1], flush=True)
            # Restarting every block is measured once per volume and method (first halo).
            runs = [(halo, True) for halo in halos] + [(halos[0], False)]
            for halo, chain in runs:
                with tempfile.TemporaryDirectory() as folder:
                    started = time.perf_counter()
                    segment_blockwise(
                        image,
                        f"{folder}/labels.zarr",
                        block_shape=block,
                        halo=halo,
                        propagation=method,
                        start="watershed",
                        scale=voxel,
                        unit="nm",
                        chain=chain,
                    )
                    seconds = time.perf_counter() - started
                    labels = read_volume(f"{folder}/labels.zarr", as_labels=True).data
                mode = "chained" if chain else "each block from its middle slice"
                lines.append(
                    f"| {name} | {method} | {' '.join(map(str, block))} "
                    f"({' '.join(map(str, halo))}) | {mode} | "
                    f"{adapted_rand_error(labels, whole):.3f} | "
                    f"{adapted_rand_error(labels, gt):.3f} | {seconds:.0f} |"
                )
                print(lines[-1], flush=True)
    if only:
        return  # a partial run: its rows are printed, the doc is left alone
    out = REPO / "docs/results/chained-blockwise.md"
    notes = REPO / "docs/results/chained-blockwise-notes.md"  # the reading, kept by hand
    write_report(
        out, "\n".join(lines) + "\n" + ("\n" + notes.read_text() if notes.exists() else "")
    )
    print(out.read_text())


if __name__ == "__main__":
    main()
