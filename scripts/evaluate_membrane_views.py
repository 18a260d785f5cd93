"""How many views (flips/rotations) the membrane map of near-isotropic FIB-SEM should average.

    .venv/bin/python scripts/evaluate_membrane_views.py [--views 1 2 4] [-o OUT.md]

`propagate` with its defaults (the calibrated 3D agglomeration) from ground-truth reference
slices, the map predicted once per number of views (``predict_membrane(views=...)``) and
given. Validation: gala *train* slices 40-49, which no network trained on (they only chose the
membrane network's epoch), from slices 42, 44, 45 and 47. Reported, never used to choose: the
held-out gala *test* block from slices at 0.2 to 0.8 of its depth.
"""

import time
import warnings

import numpy as np

from napari_emseg.evaluation import (
    command_line,
    describe_machine,
    errors_from_references,
    gala_block,
    markdown_table,
    write_report,
)
from napari_emseg.evaluation.arguments import script_parser
from napari_emseg.inference.membrane import predict_membrane


def mean_error(image, truth, voxel, refs, views: int) -> tuple[list[float], float]:
    """ARE of each reference's propagation and the seconds of the map."""
    start = time.perf_counter()
    membrane = predict_membrane(image, pixel_nm=voxel[-1], views=views)
    seconds = time.perf_counter() - start
    return errors_from_references(image, truth, refs, membrane=membrane, voxel_size=voxel), seconds


def main() -> None:
    parser = script_parser(__doc__, data=True)
    parser.add_argument("--views", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("-o", "--output", default="docs/results/membrane-views.md")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    train, test = gala_block("train", data=args.data), gala_block("test", data=args.data)
    sets = [
        ("gala train 40-49 (validation)", train.image[40:50], train.gt[40:50], [2, 4, 5, 7]),
        ("gala test (held out)", test.image, test.gt, test.spread((0.2, 0.35, 0.5, 0.65, 0.8))),
    ]
    rows = []
    for name, image, truth, refs in sets:
        for views in args.views:
            errors, seconds = mean_error(image, truth, train.voxel_size, refs, views)
            each = ", ".join(f"{e:.3f}" for e in errors)
            rows.append([name, views, f"{np.mean(errors):.4f}", each, f"{seconds:.1f}"])
            print(rows[-1], flush=True)
    header = ["set", "views", "mean ARE", "per reference slice", "map seconds"]
    made = command_line("scripts/evaluate_membrane_views.py")
    text = [
        "# Views of the membrane map for near-isotropic FIB-SEM\n",
        f"Made by `{made}` on {describe_machine()}.\n",
        __doc__.split("\n\n", 2)[2].strip() + "\n",
        *markdown_table(header, rows),
    ]
    write_report(args.output, "\n".join(text) + "\n")


if __name__ == "__main__":
    main()
