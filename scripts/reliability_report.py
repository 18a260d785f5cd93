"""Feed the CLI every kind of bad input we know of; write what each gets into docs/reliability.md.

    .venv/bin/python scripts/reliability_report.py [-o docs/reliability.md]

Each case runs the real `napari-emseg` entry point in-process on files made in a temporary
folder; the table (between the markers in the document) holds its exit status and exactly what
it printed last on stderr (`napari_emseg.cli.reliability`). tests/cli/test_docs.py
regenerates the table and compares, so the document cannot drift from the code.
"""

import argparse
import json
from pathlib import Path

from napari_emseg.cli.reliability import report_table, with_table

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "reliability.md")
    args = parser.parse_args()
    table = report_table()
    args.output.write_text(with_table(args.output.read_text(), table))
    print(json.dumps({"cases": table.count("\n") - 1, "output": str(args.output)}))


if __name__ == "__main__":
    main()
