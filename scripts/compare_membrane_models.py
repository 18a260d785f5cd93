"""Membrane models compared on the validation slices of every modality, at several pixel sizes.

Each validation set is shown to each model as a user's stack would be: resampled to the pixel
size of the view (anti-aliased), predicted through `napari_emseg.inference.membrane` with that
pixel size (so each model's own resampling rule applies: a 4 nm card enlarges coarse stacks at
most 1.25x, a range card runs stacks in its range as they are), and the map brought back to the
set's grid and scored with ISBI 2012 V_rand against its own labels. Validation sets only (never
the held-out ISBI 20-29 or the gala test block): ISBI 2012 slices 18-19 (4 nm), gala train
slices 40-49 (10 nm), Gerhard VNC slices 18-19 (4.6 nm; fusionnet-w0.375-multimodal trained on
them, so its Gerhard rows flatter it).

    .venv/bin/python scripts/compare_membrane_models.py MODEL [MODEL ...] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_emseg.evaluation.data import gala_block, gerhard_stack, isbi_block
from napari_emseg.inference.membrane import predict_membrane
from napari_emseg.inference.resampling import back_to_shape, to_pixel_size
from napari_emseg.metrics import isbi2012_scores
from napari_emseg.training.data import boundaries_from_instances
from napari_emseg.training.validate import VALIDATION_THRESHOLDS


def validation_sets() -> list[tuple[str, np.ndarray, np.ndarray, float, tuple[float, ...]]]:
    """(name, image, membrane mask, own pixel nm, view pixel sizes)."""
    isbi = isbi_block(0, 20)
    gala = gala_block("train")
    gerhard = gerhard_stack()
    return [
        ("ISBI 18-19", isbi.image[18:20], isbi.membrane_mask[18:20], 4.0, (4.0, 6.0, 8.0, 12.0)),
        (
            "gala train 40-49",
            gala.image[40:50],
            boundaries_from_instances(gala.gt[40:50]),
            10.0,
            (10.0, 12.0),
        ),
        (
            "Gerhard 18-19",
            gerhard.image[18:20],
            gerhard.membrane_mask[18:20],
            4.6,
            (4.6, 8.0, 12.0),
        ),
    ]


def score_view(model: str, image, mask, own_nm: float, view_nm: float) -> float:
    stack = image.astype(np.float32)
    if abs(view_nm / own_nm - 1) > 0.02:
        stack = to_pixel_size(stack, own_nm, view_nm)
    prob = predict_membrane(stack, model=model, device="cpu", pixel_nm=view_nm)
    if prob.shape != image.shape:
        prob = back_to_shape(prob, image.shape)
    gt = np.where(mask, 0, 255).astype(np.uint8)
    return float(
        isbi2012_scores(np.clip(prob, 0, 1), gt, thresholds=VALIDATION_THRESHOLDS)["vrand"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--json", default="runs/compare-membrane.json")
    args = parser.parse_args()
    rows = []
    for name, image, mask, own, views in validation_sets():
        for view in views:
            row = {"set": name, "pixel_nm": view}
            for model in args.models:
                start = time.perf_counter()
                row[model] = round(score_view(model, image, mask, own, view), 4)
                print(f"{name} @ {view:g} nm  {model}: {row[model]:.4f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
            rows.append(row)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=1))
    header = "| set | pixel (nm) | " + " | ".join(args.models) + " |"
    print("\n" + header + "\n" + "|---" * (2 + len(args.models)) + "|")
    for row in rows:
        values = " | ".join(f"{row[m]:.4f}" for m in args.models)
        print(f"| {row['set']} | {row['pixel_nm']:g} | {values} |")


if __name__ == "__main__":
    main()
