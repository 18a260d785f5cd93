"""Copy fine-tuned propagation weights into the package when they beat the shipped ones.

    .venv/bin/python scripts/ship_propagation_weights.py runs/finetune/st runs/finetune/stc ...

Each folder is a ``train propagation --init-from`` run (maybe resumed over several calls). The
two tests, on training data only (ISBI 2012 slices 0-19, reference 10; the gala *train* block,
reference 25): :mod:`napari_emseg.evaluation.weights`. Only when both pass do the weights and
card replace the shipped ones; the card records the scores. DATA (default ../shared/data) holds
isbi2012/ and gala_fibsem_medulla/.
"""

import functools
import os
from pathlib import Path

from napari_emseg.evaluation import training_blocks
from napari_emseg.evaluation.arguments import script_parser
from napari_emseg.evaluation.weights import ship, training_are, with_default_membrane

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "src/napari_emseg/weights"


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="train propagation --init-from runs")
    runs = parser.parse_args().runs
    # gala train (reference 25) and ISBI 0-19 (reference 10), mapped once for every run
    blocks = functools.cache(
        lambda: with_default_membrane(training_blocks(data=os.environ.get("DATA")))
    )
    for run in runs:
        print(ship(run, WEIGHTS, lambda card: training_are(card, blocks())), flush=True)


if __name__ == "__main__":
    main()
