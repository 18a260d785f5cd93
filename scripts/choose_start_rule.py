"""Which agglomeration rule transfers across modalities and membrane maps (issue #21, item 3).

For every training condition (a block and a membrane map of it), the fragments of the map are
agglomerated once (a recorded merge tree) and cut at every threshold of a grid, for three
smoothings; each cut is scored against the ground truth. Conditions: the gala FIB-SEM *train*
block (3D agglomeration) and ISBI 2012 slices 0-19 and the Gerhard VNC stack (per-slice
agglomeration: thick sections), each with the maps of several membrane networks, at their own
pixel size and where the network saw the wrong one (the condition a new user meets on a stack
whose size is unknown or unlike the training data). Held-out blocks are never read.

A rule is judged by its worst and mean excess error over all conditions (its ARE minus the best
ARE of that condition): a fixed threshold relative to the map's 99th percentile against
thresholds relative to other statistics of the map.

    .venv/bin/python scripts/choose_start_rule.py [--out docs/results/start-rule.md] [--quick]
    .venv/bin/python scripts/choose_start_rule.py --report-only   # the doc from the raw scores
"""

import argparse
import json
from pathlib import Path

from napari_emseg.evaluation.start_rule import report, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fusionnet-w0.375-multimodal"])
    parser.add_argument("--quick", action="store_true", help="a few slices per block")
    parser.add_argument("--json", default="runs/start-rule.json", help="raw scores")
    parser.add_argument("--out", default="docs/results/start-rule.md")
    parser.add_argument("--report-only", action="store_true", help="the doc from --json")
    args = parser.parse_args()
    if args.report_only:
        rows = json.loads(Path(args.json).read_text())
    else:
        rows = run(args.models, args.quick)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
        print(f"wrote {args.json}")
    report(rows, Path(args.out))


if __name__ == "__main__":
    main()
