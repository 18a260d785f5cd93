"""docs/results/calibration.md: what calibrating on the corrected slice buys, per block.

    .venv/bin/python scripts/evaluate_calibration.py [--blocks gala-train gala-test isbi-test]

Each block's ground-truth slice `ref` is the user's corrected reference (dilated into the
membranes, as a proofreader paints: `Block.reference`). `napari_emseg.propagate` runs with its
defaults from it, with calibration on and off, with the block's voxel size and without one
(then estimated, and with calibration the estimate is checked on the reference too). Scored
by the adapted Rand error (ARE) of the whole block against its 3D ground truth.
"""

import argparse
import time
import warnings
from pathlib import Path

from napari_emseg import pipeline
from napari_emseg.evaluation import describe_machine, gala_block, markdown_table, write_report
from napari_emseg.evaluation.data import isbi_block
from napari_emseg.metrics import adapted_rand_error

REPORT = Path(__file__).resolve().parents[1] / "docs" / "results" / "calibration.md"
BLOCKS = {
    "gala-train": ("training", lambda: gala_block("train")),
    "gala-test": ("held out", lambda: gala_block("test")),
    "isbi-train": ("training", lambda: isbi_block(0, 20)),
    "isbi-test": ("held out", lambda: isbi_block(20, 30)),
}


def run_block(key: str) -> list[list]:
    split, load = BLOCKS[key]
    block = load()
    reference = block.reference()
    rows = []
    for voxel in (block.voxel_size, None):
        for calibrate in (False, True):
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = pipeline.propagate(
                    block.image, reference, block.ref, voxel_size=voxel, calibrate=calibrate,
                    device="cpu",
                )  # fmt: skip
            seconds = time.perf_counter() - started
            are = adapted_rand_error(result.labels, block.gt)
            chosen = "off"
            if result.calibration is not None:
                chosen = "; ".join(c.line() for c in result.calibration.choices.values())
                chosen = chosen or result.calibration.summary()
            given = (
                "file" if voxel else "estimated " + " ".join(f"{v:g}" for v in result.voxel_size)
            )
            rows.append(
                [block.name, split, given, result.method, chosen, f"{are:.3f}", f"{seconds:.0f}"]
            )
            print(" | ".join(map(str, rows[-1])), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", nargs="+", default=list(BLOCKS), choices=list(BLOCKS))
    args = parser.parse_args()
    rows = [row for key in args.blocks for row in run_block(key)]
    header = ["block", "split", "voxel size", "method", "calibration", "ARE", "s"]
    table = "\n".join(markdown_table(header, rows))
    write_report(
        REPORT,
        f"""# Calibration on the corrected slice: measured

Command: `.venv/bin/python scripts/evaluate_calibration.py` ({describe_machine()}; the
machine was shared with other work, so seconds are upper bounds).

`propagate` from one corrected slice (the block's ground truth on its reference slice), with
its defaults, calibration off and on, the voxel size from the file and unknown. ARE of the
whole block (lower is better). "calibration" lists each choice: its value, its error on the
corrected slice and the default's.

{table}

How calibration works and when it is skipped: [../calibration.md](../calibration.md).
""",
    )
    print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
