"""Speed and accuracy of the learned propagator's inference settings, one row per setting.

Each row propagates the ground truth of a block's reference slice through the block with the
facade (``pipeline.propagate``, calibration and vote included, the membrane map predicted once
and shared) and scores it (adapted Rand error), next to the classical propagator. Settings are
chosen on the training blocks (``--split train``: ISBI 0-19, gala train) and reported on the
held-out ones (``--split test``: ISBI 20-29, gala test). Torch runs one thread, so CPU seconds
compare settings even on a shared machine.

    python scripts/benchmark_propagation.py --split test
    python scripts/benchmark_propagation.py --split train --blocks isbi --carry 0.5 0.7
    python scripts/benchmark_propagation.py --split train --patches 56 64 72
    python scripts/benchmark_propagation.py --split train --blocks isbi-halves gala \
        --references 0.2,0.5,0.8 --only '{"overlap": 16}' '{"overlap": 8}'

``--references`` propagates from each of these slices of every block (``--blocks isbi-halves``
cuts ISBI 0-19 into two 10-slice blocks) and reports the mean ARE and the summed seconds: one
slice's result moves by up to 0.02 with rounding alone (bfloat16), so settings are compared
over many. ``--only`` rows replace the built-in settings (method options as JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import warnings

import numpy as np

# (label, method options, precision): the settings before issue 22 and each change after it.
SETTINGS = {
    "before: card's 8 nm, float32": ({"network_pixel_nm": 8.0}, "float32"),
    "+ bfloat16": ({"network_pixel_nm": 8.0}, "auto"),
    "+ network at 16 nm at most": ({}, "auto"),
}


def run(block, method: str, options: dict | None, precision: str, refs=None) -> dict:
    """Propagate from ``block.ref`` (or each of ``refs``) and score; means and summed seconds."""
    from napari_emseg import pipeline
    from napari_emseg._timing import record_stages
    from napari_emseg.evaluation import score

    os.environ["EMSEG_PRECISION"] = precision
    errors, wall, cpu, stages = [], 0.0, 0.0, {}
    for ref in refs or [block.ref]:
        at = dataclasses.replace(block, ref=ref)
        with record_stages() as recorded:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            out = pipeline.propagate(
                at.image, at.reference(), ref, membrane=at.membrane, method=method,
                device="cpu", voxel_size=at.voxel_size, method_options=options,
            )  # fmt: skip
            wall += time.perf_counter() - start_wall
            cpu += time.process_time() - start_cpu
        errors.append(score(out.labels, at.gt).are)
        for name, seconds in recorded.items():
            stages[name] = stages.get(name, 0.0) + seconds
    os.environ.pop("EMSEG_PRECISION")
    split = {k: round(v, 1) for k, v in stages.items()}
    return {"are": float(np.mean(errors)), "wall": wall, "cpu": cpu, "stages": split}


def main() -> None:
    import torch

    from napari_emseg.evaluation.data import gala_block, isbi_block
    from napari_emseg.pipeline import predict_membrane
    from napari_emseg.propagation.registry import PROPAGATORS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("train", "test"), default="test")
    parser.add_argument(
        "--blocks", nargs="+", choices=("isbi", "isbi-halves", "gala"), default=["isbi", "gala"]
    )
    parser.add_argument("--carry", type=float, nargs="*", default=[], help="carry_iou values")
    parser.add_argument("--patches", type=int, nargs="*", default=[], help="fixed patch edges")
    parser.add_argument("--references", help="reference slices as fractions of the depth")
    parser.add_argument("--only", nargs="*", default=None, help="settings as JSON options")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    # carry_iou is an option of the method; the registry may not list it for users yet
    record = PROPAGATORS["cconvlstm"]
    if "carry_iou" not in record.options:
        options = (*record.options, "carry_iou", "network_pixel_nm")
        PROPAGATORS["cconvlstm"] = dataclasses.replace(record, options=options)
    settings = dict(SETTINGS) if args.only is None else {}
    for options in args.only or []:
        settings[options] = (json.loads(options), "auto")
    for value in args.carry:
        settings[f"+ carry_iou {value}"] = ({"carry_iou": value}, "auto")
    for edge in args.patches:
        settings[f"patch {edge} px"] = ({"patch": edge}, "auto")
    make = {
        "isbi": lambda: [isbi_block(0, 20) if args.split == "train" else isbi_block()],
        "isbi-halves": lambda: (
            [isbi_block(0, 10), isbi_block(10, 20)] if args.split == "train" else [isbi_block()]
        ),
        "gala": lambda: [gala_block(args.split)],
    }
    print("| block | setting | ARE | wall s | CPU s | stages (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.blocks:
        for block in make[name]():
            block.membrane = np.asarray(
                predict_membrane(block.image, voxel_size=block.voxel_size, device="cpu")
            )
            refs = block.spread(args.references.split(",")) if args.references else None
            rows = [("classical (watershed)", run(block, "watershed", None, "auto", refs))]
            rows += [
                (label, run(block, "cconvlstm", *setting, refs))
                for label, setting in settings.items()
            ]
            for label, row in rows:
                print(
                    f"| {block.name} | {label} | {row['are']:.4f} | {row['wall']:.1f} | "
                    f"{row['cpu']:.1f} | {row['stages']} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
