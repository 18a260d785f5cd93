"""Copy fine-tuned propagation weights into the package when they beat the shipped ones.

    .venv/bin/python scripts/ship_propagation_weights.py runs/finetune/st runs/finetune/stc ...

Each folder is a ``train propagation --init-from`` run: its ``metrics.jsonl`` starts with the
validation of the weights it started from (step 0). When the best validation came later, its
weights and card replace the shipped ones; the card then records both scores and says what
the fine-tuning was. Nothing is copied for a run whose best is its start.
"""

import json
import shutil
import sys
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[1] / "src/napari_emseg/weights"


def ship(run: Path) -> str:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    start = next(r for r in records if "init_from" in r)
    card_file = next(run.glob("*.propagation.json"))
    card = json.loads(card_file.read_text())
    best = card["metrics"]
    if best["step"] == 0:
        return f"{card['name']}: kept the shipped weights (no step beat {start['val_iou']:.4f})"
    shipped = json.loads((WEIGHTS / card_file.name).read_text())
    steps = max(r["step"] for r in records)
    card["metrics"]["start_closed_loop_iou"] = round(start["val_iou"], 4)
    card["description"] = (
        f"{shipped['description'].split(' Fine-tuned')[0]} Fine-tuned {steps} steps from those "
        f"weights on the maps of the default membrane model at each stack's pixel size "
        f"(validation IoU {start['val_iou']:.3f} -> {best['train_closed_loop_iou']:.3f}, best "
        f"at step {best['step']}; scripts/finetune_propagation_variants.sh)."
    )
    shutil.copy(run / card["weights"], WEIGHTS / card["weights"])
    (WEIGHTS / card_file.name).write_text(json.dumps(card, indent=2) + "\n")
    return f"{card['name']}: shipped step {best['step']} ({start['val_iou']:.4f} -> " + (
        f"{best['train_closed_loop_iou']:.4f})"
    )


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(ship(Path(folder)))
