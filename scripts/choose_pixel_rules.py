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

from pathlib import Path

from napari_emseg import pipeline
from napari_emseg.evaluation import describe_machine, gala_block, write_report
from napari_emseg.evaluation.arguments import script_parser
from napari_emseg.evaluation.choices import pixel_rule_row, pixel_rule_table

REPO = Path(__file__).resolve().parents[1]
REF = 25


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--model", default=None, help="membrane model (default: the default)")
    parser.add_argument("--block", default="train", choices=("train", "test"))
    parser.add_argument("-o", "--output", default=str(REPO / "docs/results/pixel-size-choice.md"))
    args = parser.parse_args()
    block = gala_block(args.block, ref=REF)
    write(args, [pixel_rule_row(block, model=args.model, resample=r) for r in (False, True)])


def write(args, rows) -> None:
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
    lines += pixel_rule_table(rows)
    write_report(args.output, "\n".join(lines) + "\n")
    print(Path(args.output).read_text())


if __name__ == "__main__":
    main()
