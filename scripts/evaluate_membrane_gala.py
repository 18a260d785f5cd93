"""Gala FIB-SEM *test* block: V_rand of membrane maps (native 10 nm and resampled to 4 nm) and
the adapted Rand error of propagate() from ground-truth slice 25 with each map.

    .venv/bin/python scripts/evaluate_membrane_gala.py MODEL [MODEL ...] -o OUT.json
"""

import json
from pathlib import Path

import torch

from napari_emseg.evaluation import gala_block, write_report
from napari_emseg.evaluation.arguments import script_parser
from napari_emseg.evaluation.membrane import resampling_row


def main() -> None:
    parser = script_parser(__doc__, data=True)
    parser.add_argument("models", nargs="+")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--ref", type=int, default=25)
    parser.add_argument("--no-propagate", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    block = gala_block("test", ref=args.ref, data=args.data)
    rows = [resampling_row(block, m, propagate=not args.no_propagate) for m in args.models]
    write_report(args.output, json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
