"""docs/results/pixel-size-choice.md: resample to the model's pixel size? Sizes in nm or px?

    .venv/bin/python scripts/choose_pixel_rules.py [--model NAME_OR_CARD]

On the gala FIB-SEM *train* block (10 nm; training data, so choices made here are allowed) the
membrane map is predicted twice, at the file's pixel size and resampled to the model's 4 nm
(`predict_membrane(resample=...)`); each map is scored (ISBI V_rand against the instance GT,
the agglomeration start's ARE) and feeds propagation from ground-truth slice 25 with the
classical propagator's sizes in nm (the default) and in 4 nm pixels (the rule before), and with
the learned propagator. The lowest error sets `inference.membrane.predict_membrane`'s
``resample`` default. ISBI 2012 (4 nm) is unaffected by either choice.
"""

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_emseg import pipeline
from napari_emseg.inference.membrane import predict_membrane
from napari_emseg.metrics import adapted_rand_error, isbi2012_scores
from napari_emseg.propagation import propagate

REPO = Path(__file__).resolve().parents[1]
GALA = REPO.parent / "shared" / "data" / "gala_fibsem_medulla"
VOXEL = (10.0, 10.0, 10.0)
REF = 25
# The classical propagator's sizes before they were defined in nm: pixels, whatever the scale.
PIXEL_RULE = {"erosion": 4.0, "cell_min_size": 50, "newcomer_core": 3.0, "smoothing": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="membrane model (default: the default)")
    parser.add_argument("--block", default="train", choices=("train", "test"))
    parser.add_argument("-o", "--output", default=str(REPO / "docs/results/pixel-size-choice.md"))
    args = parser.parse_args()
    image = tifffile.imread(GALA / f"{args.block}-image.tif")
    gt = tifffile.imread(GALA / f"{args.block}-gt.tif").astype(np.uint32)
    reference = np.zeros_like(gt)
    reference[REF] = gt[REF]
    rows = []
    for resample in (False, True):
        started = time.perf_counter()
        membrane = predict_membrane(image, model=args.model, pixel_nm=VOXEL[-1], resample=resample)
        seconds = time.perf_counter() - started
        vrand = isbi2012_scores(membrane, gt)["vrand"]
        agglomerated = adapted_rand_error(pipeline.agglomerate(membrane, voxel_size=VOXEL), gt)
        runs = {
            "watershed, sizes in nm": ("watershed", {}),
            "watershed, sizes in 4 nm px": ("watershed", {"pixel_nm": 4.0, **PIXEL_RULE}),
            "cconvlstm": ("cconvlstm", {}),
        }
        errors = {}
        for name, (method, options) in runs.items():
            out = propagate(
                image, reference, REF, membrane=membrane, method=method, voxel_size=VOXEL, **options
            )
            errors[name] = adapted_rand_error(out, gt)
            print(resample, name, round(errors[name], 4), flush=True)
        rows.append((resample, seconds, vrand, agglomerated, errors))
    write(args, rows)


def write(args, rows) -> None:
    names = list(rows[0][4])
    lines = [
        "# Resampling to the model's pixel size, and sizes in nm: the choice on training data",
        "",
        f"Made by `.venv/bin/python scripts/choose_pixel_rules.py --block {args.block}"
        + (f" --model {args.model}" if args.model else "")
        + f"` on {platform.node() or 'this machine'} (CPU).",
        f"gala FIB-SEM *{args.block}* block (50x100x200, 10 nm), membrane model "
        f"`{args.model or pipeline.list_models()[0]}` (trained at 4 nm); propagation from "
        f"ground-truth slice {REF}, supervoxel vote on. Adapted Rand error (lower is better).",
        "",
        "| map | membrane s | V_rand | agglomeration ARE | " + " | ".join(names) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for resample, seconds, vrand, agglomerated, errors in rows:
        label = "resampled to 4 nm and back" if resample else "at the file's 10 nm"
        cells = " | ".join(f"{errors[n]:.3f}" for n in names)
        lines.append(f"| {label} | {seconds:.1f} | {vrand:.3f} | {agglomerated:.3f} | {cells} |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(Path(args.output).read_text())


if __name__ == "__main__":
    main()
