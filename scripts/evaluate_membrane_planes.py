"""Which planes the membrane map of isotropic FIB-SEM averages, and the automatic threshold.

    .venv/bin/python scripts/evaluate_membrane_planes.py [--maps 2 planes] [-o OUT.md]

Maps: ``N`` is the sections seen in N rotations (``predict_membrane(views=N)``), ``planes``
the mean of the maps of the sections and of the stack's xz and yz planes
(``predict_membrane(planes=3)``). Each map is predicted once and given to `propagate` (its
defaults: the calibrated 3D agglomeration) from ground-truth reference slices, and cut by the
automatic start (`segment`'s agglomeration) at each threshold of a grid.

Validation: gala *train* slices 40-49, which no network trained on (they only chose the
membrane network's epoch), from slices 42, 44, 45 and 47. The map is predicted on slices 30-49
(planes across 10 slices are too short, `inference.membrane.MIN_PLANE_DEPTH`), so the xz and
yz planes see slices 30-39, which the network trained on as sections. The automatic start is
also cut on the whole train block (slices 0-39 trained the network). Reported, never used to
choose: the held-out gala *test* block from slices at 0.2 to 0.8 of its depth.
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
    score,
    write_report,
)
from napari_emseg.evaluation.arguments import script_parser
from napari_emseg.inference.membrane import predict_membrane
from napari_emseg.segmentation.supervoxels import supervoxel_hierarchy

THRESHOLDS = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def make_map(image: np.ndarray, pixel_nm: float, kind: str) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    options = {"planes": 3} if kind == "planes" else {"views": int(kind)}
    membrane = predict_membrane(image, pixel_nm=pixel_nm, **options)
    return membrane, time.perf_counter() - start


def start_errors(membrane, truth, voxel) -> list[float]:
    """ARE of the automatic start (sigma 5 nm) cut at each of ``THRESHOLDS``."""
    hierarchy = supervoxel_hierarchy(membrane, voxel_size=voxel, per_slice=False, sigma=0.5)
    return [score(hierarchy.labels(t), truth).are for t in THRESHOLDS]


def main() -> None:
    parser = script_parser(__doc__, data=True)
    parser.add_argument(
        "--maps", nargs="+", default=["2", "planes"], choices=["1", "2", "4", "planes"]
    )
    parser.add_argument("-o", "--output", default="docs/results/membrane-planes.md")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    train, test = gala_block("train", data=args.data), gala_block("test", data=args.data)
    voxel = train.voxel_size
    rows, start_rows = [], []
    for kind in args.maps:
        context, seconds = make_map(train.image[30:50], voxel[-1], kind)
        whole, _ = make_map(train.image, voxel[-1], kind)
        held, held_seconds = make_map(test.image, voxel[-1], kind)
        sets = [
            ("gala train 40-49 (validation)", train.image[40:], train.gt[40:], context[10:],
             [2, 4, 5, 7], seconds),
            ("gala test (held out)", test.image, test.gt, held,
             test.spread((0.2, 0.35, 0.5, 0.65, 0.8)), held_seconds),
        ]  # fmt: skip
        for name, image, truth, membrane, refs, took in sets:
            errors = errors_from_references(image, truth, refs, membrane=membrane, voxel_size=voxel)
            each = ", ".join(f"{e:.3f}" for e in errors)
            rows.append([name, kind, f"{np.mean(errors):.4f}", each, f"{took:.1f}"])
            print(rows[-1], flush=True)
        starts = [
            ("gala train 40-49 (validation)", context[10:], train.gt[40:]),
            ("gala train 0-49 (0-39 trained the network)", whole, train.gt),
            ("gala test (held out)", held, test.gt),
        ]
        for name, membrane, truth in starts:
            errors = start_errors(membrane, truth, voxel)
            start_rows.append([name, kind, *(f"{e:.3f}" for e in errors)])
            print(start_rows[-1], flush=True)
    made = command_line("scripts/evaluate_membrane_planes.py")
    text = [
        "# Planes of the membrane map for isotropic FIB-SEM\n",
        f"Made by `{made}` on {describe_machine()}.\n",
        __doc__.split("\n\n", 2)[2].strip() + "\n",
        "## `propagate` from one corrected slice (mean ARE; seconds: the map of the stack)\n",
        *markdown_table(["set", "map", "mean ARE", "per reference slice", "map seconds"], rows),
        "\n## The automatic start: ARE by threshold\n",
        *markdown_table(["set", "map", *(f"{t:g}" for t in THRESHOLDS)], start_rows),
    ]
    write_report(args.output, "\n".join(text) + "\n")


if __name__ == "__main__":
    main()
