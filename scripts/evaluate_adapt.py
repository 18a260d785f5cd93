"""Measure adaptation (issue #13): propagation ARE with the shipped vs the adapted membrane map.

    .venv/bin/python scripts/evaluate_adapt.py [--split test|train] [--data ../shared/data]
        [--datasets gala,isbi] [--methods watershed,cconvlstm] [--settings JSON ...]
        [--seeds 0 ...] [--propagate-options JSON] [-o table.md]

``--split train`` (for choosing the settings): the gala FIB-SEM *train* block, reference slice
25, and ISBI 2012 slices 0-19, reference slice 10. ``--split test`` (held out, for the report):
the gala *test* block, reference slice 25, and ISBI slices 20-29, reference slice 25 (index 5).
The reference slice is the ground truth grown 10 px into its boundary pixels
(``expand_labels``), as a proofread slice would be. For each dataset the shipped model's map is
predicted once; then, for every ``--settings`` (keyword options of
:func:`napari_emseg.training.adapt.adapt`, as JSON) and seed, the network is adapted on the
reference slice alone, the whole block is predicted with the adapted card, and every method
propagates the reference through it with ``propagate``'s defaults (plus
``--propagate-options``). Rows give the 3D adapted Rand error (ARE, lower is better), VOI split /
merge, the adaptation's steps and wall seconds. Results: docs/adapt.md.
"""

import argparse
import json
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from skimage.segmentation import expand_labels

from napari_emseg.inference.membrane import predict_membrane
from napari_emseg.metrics import adapted_rand_error, variation_of_information
from napari_emseg.models.cards import DEFAULT_MEMBRANE_MODEL, get_card
from napari_emseg.propagation import propagate
from napari_emseg.training.adapt import DEFAULT_BASE_MODEL, adapt

GROW_REFERENCE = 10  # px, as scripts/evaluate_propagation.py


@dataclass
class Dataset:
    name: str
    image: np.ndarray
    gt: np.ndarray
    ref: int  # index in this block
    pixel_nm: float


def load(data: Path, split: str) -> list[Dataset]:
    gala = data / "gala_fibsem_medulla"
    block = "train" if split == "train" else "test"
    isbi = data / "isbi2012"
    # ISBI slices 0-19 are the membrane networks' training/selection slices, 20-29 held out.
    z0, z1, ref = (0, 20, 10) if split == "train" else (20, 30, 25)
    return [
        Dataset(
            f"gala FIB-SEM {block} block, ref 25",
            tifffile.imread(gala / f"{block}-image.tif"),
            tifffile.imread(gala / f"{block}-gt.tif").astype(np.uint32),
            25,
            10.0,
        ),
        Dataset(
            f"ISBI 2012 slices {z0}-{z1 - 1}, ref {ref}",
            tifffile.imread(isbi / "train-volume.tif")[z0:z1],
            tifffile.imread(isbi / "train-instances-3d.tif")[z0:z1].astype(np.uint32),
            ref - z0,
            4.0,
        ),
    ]


def reference_labels(dataset: Dataset) -> np.ndarray:
    labels = np.zeros(dataset.gt.shape, np.uint32)
    labels[dataset.ref] = expand_labels(dataset.gt[dataset.ref], GROW_REFERENCE)
    return labels


def score_methods(
    dataset, labels, membrane, methods, device, extra: dict
) -> dict[str, dict[str, float]]:
    scores = {}
    for method in methods:
        options = {"pixel_nm": dataset.pixel_nm} if method == "cconvlstm" else {}
        options.update(extra)
        out = propagate(
            dataset.image,
            labels,
            dataset.ref,
            membrane=membrane,
            method=method,
            device=device,
            **options,
        )
        split, merge = variation_of_information(out, dataset.gt)
        scores[method] = {
            "are": adapted_rand_error(out, dataset.gt),
            "split": split,
            "merge": merge,
        }
    return scores


def row(dataset, model, settings, seed, steps, seconds, scores, methods) -> str:
    cells = [
        f"{scores[m]['are']:.3f} ({scores[m]['split']:.2f} / {scores[m]['merge']:.2f})"
        for m in methods
    ]
    return f"| {dataset.name} | {model} | {settings} | {seed} | {steps} | {seconds} | " + (
        " | ".join(cells) + " |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["train", "test"], default="test")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data"))
    parser.add_argument("--methods", default="watershed,cconvlstm")
    parser.add_argument("--datasets", default="gala,isbi", help="gala, isbi or both")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["{}"],
        help="adapt() keyword options as JSON, one adapted model each ({} = the defaults)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--propagate-options",
        default="{}",
        metavar="JSON",
        help="more keyword options of napari_emseg.propagation.propagate, as JSON",
    )
    parser.add_argument("-o", "--output", help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    extra = json.loads(args.propagate_options)
    wanted = args.datasets.split(",")
    datasets = [d for d in load(Path(args.data), args.split) if d.name.split()[0].lower() in wanted]
    header = (
        "| data | membrane map | adapt settings | seed | steps | adapt s | "
        + " | ".join(f"{m} ARE (VOI split / merge)" for m in methods)
        + " |\n|"
        + " --- |" * (6 + len(methods))
    )
    lines = [header]
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for dataset in datasets:
            labels = reference_labels(dataset)
            # The shipped default map, and that of every base model the settings adapt.
            bases = dict.fromkeys(
                [DEFAULT_MEMBRANE_MODEL]
                + [json.loads(text).get("model", DEFAULT_BASE_MODEL) for text in args.settings]
            )
            for model in bases:
                shipped = predict_membrane(dataset.image, model=model, device=args.device)
                scores = score_methods(dataset, labels, shipped, methods, args.device, extra)
                name = f"shipped {get_card(model).name}"
                lines.append(row(dataset, name, "-", "-", "-", "-", scores, methods))
                print(lines[-1], flush=True)
            for text in args.settings:
                settings = json.loads(text)
                for seed in args.seeds:
                    card = Path(folder) / "adapted.json"
                    start = time.perf_counter()
                    adapt(
                        dataset.image,
                        labels,
                        [dataset.ref],
                        out=card,
                        overwrite=True,
                        device=args.device,
                        pixel_nm=dataset.pixel_nm,
                        seed=seed,
                        **settings,
                    )
                    seconds = time.perf_counter() - start
                    metrics = json.loads(card.read_text())["metrics"]
                    adapted = predict_membrane(dataset.image, model=str(card), device=args.device)
                    scores = score_methods(dataset, labels, adapted, methods, args.device, extra)
                    lines.append(
                        row(
                            dataset,
                            "adapted",
                            f"`{json.dumps(settings)}`",
                            seed,
                            metrics["adapt_steps"],
                            f"{seconds:.0f}",
                            scores,
                            methods,
                        )
                    )
                    print(lines[-1], flush=True)
    if args.output:
        command = "scripts/evaluate_adapt.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        Path(args.output).write_text(
            f"    .venv/bin/python {command}\n\n" + "\n".join(lines) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
