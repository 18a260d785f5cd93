"""docs/results/chained-blockwise.md: blocks that cut z, chained or not, against one whole run.

    .venv/bin/python scripts/evaluate_chained_blockwise.py [--only "ISBI 0-29:cconvlstm" ...]

On the gala FIB-SEM *test* block (50x100x200, 10 nm) and ISBI 2012 slices 0-29 (4x4x50 nm),
`segment` from a reference slice (start ``watershed``) on the whole volume, and blockwise with
blocks that cut z (whole y/x, so only the z cut differs), chained (the default) and not. The
adapted Rand error between each blockwise result and the whole-volume run measures the
consistency (target <= 0.02); against the ground truth, the accuracy.
"""

from pathlib import Path

from napari_emseg.evaluation import describe_machine, gala_block, isbi_block, write_report
from napari_emseg.evaluation.arguments import script_parser
from napari_emseg.evaluation.blockwise import chained_rows

REPO = Path(__file__).resolve().parents[1]
# volume -> (block, its block shape for blockwise runs, z halos: the first also unchained)
CASES = {
    "ISBI 0-29": (lambda: isbi_block(0, 30), (10, 512, 512), [(2, 0, 0)]),
    # the second halo: the CLI's default z halo
    "gala test": (lambda: gala_block("test"), (16, 100, 200), [(4, 0, 0), (8, 0, 0)]),
}
METHODS = ("watershed", "cconvlstm")


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument(
        "--only", nargs="+", metavar="VOLUME:METHOD", help="run only these (rows printed)"
    )
    only = parser.parse_args().only
    lines = [
        "# Blocks that cut z: chained against one whole-volume run",
        "",
        "Made by `.venv/bin/python scripts/evaluate_chained_blockwise.py` on "
        f"{describe_machine()}. `segment --start watershed` from the middle "
        "slice; blockwise blocks span the whole y/x, so only the z cut differs. "
        "ARE vs whole: adapted Rand error between the blockwise and the whole-volume labels "
        "(target <= 0.02); ARE vs GT: against the ground truth.",
        "",
        "| volume | propagation | block (halo) | mode | ARE vs whole | ARE vs GT | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (load, block, halos) in CASES.items():
        methods = [m for m in METHODS if not only or f"{name}:{m}" in only]
        lines += chained_rows(name, load(), block, halos, methods) if methods else []
    if only:
        return  # a partial run: its rows are printed, the doc is left alone
    out = REPO / "docs/results/chained-blockwise.md"
    notes = REPO / "docs/results/chained-blockwise-notes.md"  # the reading, kept by hand
    write_report(
        out, "\n".join(lines) + "\n" + ("\n" + notes.read_text() if notes.exists() else "")
    )
    print(out.read_text())


if __name__ == "__main__":
    main()
