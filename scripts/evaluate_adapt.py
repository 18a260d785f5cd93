"""Measure adaptation (issue #13): propagation ARE with the shipped vs the adapted membrane map.

    .venv/bin/python scripts/evaluate_adapt.py [--split test|train] [--data ../shared/data]
        [--datasets gala,isbi] [--methods watershed,cconvlstm] [--settings JSON ...]
        [--seeds 0 ...] [--propagate-options JSON] [-o table.md]

``--split train`` chooses the settings (gala *train*, ISBI 2012 slices 0-19); ``--split test``
is held out, for the report (gala *test*, ISBI slices 20-29). Every ``--settings`` (keyword
options of :func:`napari_emseg.training.adapt.adapt`, as JSON) and seed adapts the network on
the reference slice alone; the protocol: :mod:`napari_emseg.evaluation.adapt`. Results:
docs/adapt.md.
"""

import json
import shlex
import sys
import tempfile

from napari_emseg.evaluation import markdown_table, write_report
from napari_emseg.evaluation.adapt import HEADER, adapt_rows, split_blocks
from napari_emseg.evaluation.arguments import script_parser
from napari_emseg.models.cards import DEFAULT_MEMBRANE_MODEL
from napari_emseg.training.adapt import DEFAULT_BASE_MODEL


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__, data=True)
    parser.add_argument("--split", choices=["train", "test"], default="test")
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
    settings = [json.loads(text) for text in args.settings]
    # The shipped default map, and that of every base model the settings adapt.
    bases = [DEFAULT_MEMBRANE_MODEL] + [s.get("model", DEFAULT_BASE_MODEL) for s in settings]
    wanted = args.datasets.split(",")
    blocks = [
        b for b in split_blocks(args.split, data=args.data) if b.name.split()[0].lower() in wanted
    ]
    lines = markdown_table([*HEADER, *(f"{m} ARE (VOI split / merge)" for m in methods)], [])
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for block in blocks:
            for line in adapt_rows(
                block, settings, args.seeds, methods, base_models=bases, device=args.device,
                folder=folder, **json.loads(args.propagate_options),
            ):  # fmt: skip
                lines.append(line)
                print(line, flush=True)
    if args.output:
        command = "scripts/evaluate_adapt.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        write_report(args.output, f"    .venv/bin/python {command}\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
