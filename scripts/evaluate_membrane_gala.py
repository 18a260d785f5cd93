"""Gala FIB-SEM *test* block: V_rand of membrane maps (native 10 nm and resampled to 4 nm) and
the adapted Rand error of propagate() from ground-truth slice 25 with each map.

    .venv/bin/python scripts/evaluate_membrane_gala.py MODEL [MODEL ...] -o OUT.json
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import napari_emseg
from napari_emseg import metrics
from napari_emseg.evaluation import gala_block, write_report
from napari_emseg.inference.membrane import predict_membrane


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--ref", type=int, default=25)
    parser.add_argument("--no-propagate", action="store_true")
    parser.add_argument("--data", type=Path, default=None, help="default: the shared data")
    args = parser.parse_args()
    torch.set_num_threads(2)
    block = gala_block("test", ref=args.ref, data=args.data)
    image, gt = block.image, block.gt
    seed = block.reference(grow=0)  # the ground truth as it is
    rows = []
    for model in args.models:
        row = {"model": model}
        maps = {}
        for label, pixel_nm in (("native_10nm", None), ("resampled_4nm", 10.0)):
            prob = predict_membrane(image, model=model, device="cpu", pixel_nm=pixel_nm)
            maps[label] = prob
            s = metrics.isbi2012_scores(np.clip(prob, 0, 1), gt)
            row[label] = {k: float(s[k]) for k in ("vrand", "vinfo", "vrand_threshold")}
            print(model, label, row[label], flush=True)
        if not args.no_propagate:
            start = time.perf_counter()
            seg = napari_emseg.propagate(
                image, seed, args.ref, membrane=maps["resampled_4nm"],
                voxel_size=block.voxel_size, device="cpu",
            ).labels  # fmt: skip
            row["propagate_are"] = float(metrics.adapted_rand_error(seg, gt))
            row["propagate_seconds"] = time.perf_counter() - start  # the scoring included
            print(model, "propagate ARE", row["propagate_are"], flush=True)
        rows.append(row)
    write_report(args.output, json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
