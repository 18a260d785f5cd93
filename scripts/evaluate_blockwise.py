"""Compare single-block, blockwise and dask-distributed segmentation on real EM volumes.

    .venv/bin/python scripts/evaluate_blockwise.py [--data ../shared/data] [--workers 2]
        [--threads 1] [--cases CASE ...] [--json FILE]

Every mode runs as the ``napari-emseg segment`` command a user would type, in a child process
with ``--threads`` OpenMP/MKL threads; the modes (single, blockwise, blockwise-xy, distributed,
import-only) and what is measured: :mod:`napari_emseg.evaluation.blockwise`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from napari_emseg.evaluation import data_dir, describe_machine
from napari_emseg.evaluation.arguments import script_parser
from napari_emseg.evaluation.blockwise import CASES, evaluate_case
from napari_emseg.evaluation.machine import load_average
from napari_emseg.evaluation.processes import commands_text, modes_table


def main() -> None:
    parser = script_parser(__doc__, data=True)
    parser.add_argument("--workers", type=int, default=2, help="processes of --dask local")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP/MKL threads per process (1: every mode uses one core per process)",
    )
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="emseg-blockwise-") as folder:
        results = [
            evaluate_case(case, data_dir(args.data), args.workers, args.threads, Path(folder))
            for case in args.cases
        ]
    machine, load = describe_machine(), load_average()
    print(f"Machine: {machine}; load average {load:.1f} at the end; {args.threads} thread(s)\n")
    print(f"{modes_table(results)}\n\n{commands_text(results)}")
    if args.json:
        record = {"machine": machine, "load_average_at_end": load, "results": results}
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
