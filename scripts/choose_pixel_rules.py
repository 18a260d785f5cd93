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
import time
from pathlib import Path

from napari_emseg import pipeline
from napari_emseg.evaluation import describe_machine, gala_block, markdown_table, write_report
from napari_emseg.inference.membrane import predict_membrane
from napari_emseg.metrics import adapted_rand_error, isbi2012_scores
from napari_emseg.propagation import propagate

REPO = Path(__file__).resolve().parents[1]
REF = 25
# The classical propagator's sizes before they were defined in nm: pixels, whatever the scale.
PIXEL_RULE = {"erosion": 4.0, "cell_min_size": 50, "newcomer_core": 3.0, "smoothing": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="membrane model (default: the default)")
    parser.add_argument("--block", default="train", choices=("train", "test"))
    parser.add_argument("-o", "--output", default=str(REPO / "docs/results/pixel-size-choice.md"))
    args = parser.parse_args()
    block = gala_block(args.block, ref=REF)
    image, gt, voxel = block.image, block.gt, block.voxel_size
    reference = block.reference(grow=0)  # the ground truth as it is, boundaries 0
    rows = []
    for resample in (False, True):
        started = time.perf_counter()
        membrane = predict_membrane(image, model=args.model, pixel_nm=voxel[-1], resample=resample)
        seconds = time.perf_counter() - started
        vrand = isbi2012_scores(membrane, gt)["vrand"]
        agglomerated = adapted_rand_error(pipeline.agglomerate(membrane, voxel_size=voxel), gt)
        runs = {
            "watershed, sizes in nm": ("watershed", {}),
            "watershed, sizes in 4 nm px": ("watershed", {"pixel_nm": 4.0, **PIXEL_RULE}),
            "cconvlstm": ("cconvlstm", {}),
        }
        errors = {}
        for name, (method, options) in runs.items():
            out = propagate(
                image, reference, REF, membrane=membrane, method=method, voxel_size=voxel, **options
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
        + f"` on {describe_machine()}.",
        f"gala FIB-SEM *{args.block}* block (50x100x200, 10 nm), membrane model "
        f"`{args.model or pipeline.list_models()[0]}` (trained at 4 nm); propagation from "
        f"ground-truth slice {REF}, supervoxel vote on. Adapted Rand error (lower is better).",
        "",
    ]
    cells = []
    for resample, seconds, vrand, agglomerated, errors in rows:
        label = "resampled to 4 nm and back" if resample else "at the file's 10 nm"
        scores = [f"{errors[n]:.3f}" for n in names]
        cells.append([label, f"{seconds:.1f}", f"{vrand:.3f}", f"{agglomerated:.3f}", *scores])
    header = ["map", "membrane s", "V_rand", "agglomeration ARE", *names]
    lines += markdown_table(header, cells)
    write_report(args.output, "\n".join(lines) + "\n")
    print(Path(args.output).read_text())


if __name__ == "__main__":
    main()
