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
from dataclasses import replace
from pathlib import Path

from napari_emseg.evaluation import Block, blocks, markdown_table, score, write_report
from napari_emseg.evaluation.report import table_row
from napari_emseg.inference.membrane import predict_membrane
from napari_emseg.models.cards import DEFAULT_MEMBRANE_MODEL, get_card
from napari_emseg.propagation import propagate
from napari_emseg.training.adapt import DEFAULT_BASE_MODEL, adapt


def load(data: Path | None, split: str) -> list[Block]:
    """The split's gala block and ISBI slices (0-19 train, 20-29 held out), named with their
    reference slice of the source stack."""
    return [replace(b, name=f"{b.name}, ref {b.first + b.ref}") for b in blocks(split, data=data)]


def score_methods(block: Block, labels, membrane, methods, device, extra: dict) -> dict:
    scores = {}
    for method in methods:
        options = {"pixel_nm": block.pixel_nm} if method == "cconvlstm" else {}
        options.update(extra)
        out = propagate(
            block.image, labels, block.ref, membrane=membrane, method=method, device=device,
            **options,
        )  # fmt: skip
        scores[method] = score(out, block.gt)
    return scores


def row(block: Block, model, settings, seed, steps, seconds, scores, methods) -> str:
    cells = [
        f"{scores[m].are:.3f} ({scores[m].voi_split:.2f} / {scores[m].voi_merge:.2f})"
        for m in methods
    ]
    return table_row([block.name, model, settings, seed, steps, seconds, *cells])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["train", "test"], default="test")
    parser.add_argument("--data", type=Path, default=None, help="default: the shared data")
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
    datasets = [d for d in load(args.data, args.split) if d.name.split()[0].lower() in wanted]
    header = ["data", "membrane map", "adapt settings", "seed", "steps", "adapt s"]
    lines = markdown_table([*header, *(f"{m} ARE (VOI split / merge)" for m in methods)], [])
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for dataset in datasets:
            labels = dataset.reference()
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
        write_report(args.output, f"    .venv/bin/python {command}\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
