"""Copy fine-tuned propagation weights into the package when they beat the shipped ones.

    .venv/bin/python scripts/ship_propagation_weights.py runs/finetune/st runs/finetune/stc ...

Each folder is a ``train propagation --init-from`` run (maybe resumed over several calls): its
history starts with the validation of the weights it started from (step 0). Two tests, both on
training data only:

1. the run's best closed-loop IoU on its validation crops came after step 0;
2. the end metric: the mean adapted Rand error of the whole propagation (from a ground-truth
   slice, the default membrane map, outlines and vote) on ISBI 2012 slices 0-19 (reference 10)
   and the gala *train* block (reference 25) is lower with the new weights than with the
   shipped ones. The crop IoU alone misled once (docs/propagation.md, notes).

Only then do the weights and card replace the shipped ones; the card records the scores.
DATA (default ../shared/data) holds isbi2012/ and gala_fibsem_medulla/.
"""

import argparse
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from napari_emseg.evaluation import Block, training_blocks

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "src/napari_emseg/weights"


def _history(run: Path) -> list[dict]:
    """Every validation of the run, over all its resumed calls (kept in ``last.pt``)."""
    from napari_emseg.training.checkpoint import load_checkpoint

    last = run / "last.pt"
    if last.is_file():
        return json.loads(load_checkpoint(last).get("history", "[]"))
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@functools.cache
def _blocks() -> list[Block]:
    """The training blocks (gala train, reference 25; ISBI 0-19, reference 10), each with the
    default membrane map at its pixel size."""
    from napari_emseg.inference.membrane import predict_membrane

    blocks = training_blocks(data=os.environ.get("DATA"))
    for block in blocks:
        block.membrane = predict_membrane(block.image, pixel_nm=block.pixel_nm)
    return blocks


def training_are(card: str) -> float:
    """Mean ARE over the training blocks of the learned propagator with these weights."""
    from napari_emseg.metrics import adapted_rand_error
    from napari_emseg.propagation import propagate

    scores = []
    for block in _blocks():
        out = propagate(
            block.image,
            block.reference(),
            block.ref,
            membrane=block.membrane,
            method="cconvlstm",
            weights=card,
            pixel_nm=block.pixel_nm,
            voxel_size=block.voxel_size,
        )
        scores.append(adapted_rand_error(out, block.gt))
    return float(np.mean(scores))


def ship(run: Path) -> str:
    records = _history(run)
    start = next((r for r in records if "init_from" in r), None)
    if start is None:
        return f"{run}: not started from shipped weights (--init-from): compare it by hand"
    card_file = next(run.glob("*.propagation.json"))
    card = json.loads(card_file.read_text())
    best = card["metrics"]
    if best["step"] == 0:
        return f"{card['name']}: kept the shipped weights (no step beat {start['val_iou']:.4f})"
    with tempfile.TemporaryDirectory() as folder:  # the shipped card, safe from the copy below
        shipped_card = Path(folder) / card_file.name
        shutil.copy(WEIGHTS / card_file.name, shipped_card)
        shutil.copy(WEIGHTS / card["weights"], Path(folder) / card["weights"])
        before = training_are(str(shipped_card))
    after = training_are(str(card_file))
    scores = f"crop IoU {start['val_iou']:.4f} -> {best['train_closed_loop_iou']:.4f}, "
    scores += f"training ARE {before:.4f} -> {after:.4f}"
    if after >= before:
        return f"{card['name']}: kept the shipped weights ({scores})"
    shipped = json.loads((WEIGHTS / card_file.name).read_text())
    steps = max(r["step"] for r in records)
    card["metrics"]["start_closed_loop_iou"] = round(start["val_iou"], 4)
    card["metrics"]["training_are"] = round(after, 4)
    card["description"] = (
        f"{shipped['description'].split(' Fine-tuned')[0]} Fine-tuned {steps} steps from those "
        f"weights on the maps of the default membrane model ({scores}; best at step "
        f"{best['step']})."
    )
    shutil.copy(run / card["weights"], WEIGHTS / card["weights"])
    (WEIGHTS / card_file.name).write_text(json.dumps(card, indent=2) + "\n")
    return f"{card['name']}: shipped step {best['step']} ({scores})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="train propagation --init-from runs")
    for run in parser.parse_args().runs:
        print(ship(run), flush=True)


if __name__ == "__main__":
    main()
