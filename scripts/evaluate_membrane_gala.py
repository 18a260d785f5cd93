"""Gala FIB-SEM *test* block: V_rand of membrane maps (native 10 nm and resampled to 4 nm) and
the adapted Rand error of propagate() from ground-truth slice 25 with each map.

    .venv/bin/python scripts/evaluate_membrane_gala.py MODEL [MODEL ...] -o OUT.json
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

import napari_emseg
from napari_emseg import metrics
from napari_emseg.inference.membrane import predict_membrane

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gala_fibsem_medulla"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--ref", type=int, default=25)
    parser.add_argument("--no-propagate", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    image = tifffile.imread(DATA / "test-image.tif")
    gt = tifffile.imread(DATA / "test-gt.tif")
    seed = np.zeros_like(gt)
    seed[args.ref] = gt[args.ref]
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
                image,
                seed,
                args.ref,
                membrane=maps["resampled_4nm"],
                voxel_size=(10, 10, 10),
                device="cpu",
            ).labels
            row["propagate_are"] = float(metrics.adapted_rand_error(seg, gt))
            row["propagate_seconds"] = time.perf_counter() - start
            print(model, "propagate ARE", row["propagate_are"], flush=True)
        rows.append(row)
    args.output.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
