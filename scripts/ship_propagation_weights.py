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

import functools
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from skimage.segmentation import expand_labels

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "src/napari_emseg/weights"
DATA = Path(os.environ.get("DATA", REPO.parent / "shared" / "data"))
# (image, 3D ids, slices, reference index, voxel size): training data only
BLOCKS = {
    "ISBI 0-19": ("isbi2012/train-volume.tif", "isbi2012/train-instances-3d.tif", 20, 10, 4.0),
    "gala train": (
        "gala_fibsem_medulla/train-image.tif",
        "gala_fibsem_medulla/train-gt.tif",
        None,
        25,
        10.0,
    ),
}


def _history(run: Path) -> list[dict]:
    """Every validation of the run, over all its resumed calls (kept in ``last.pt``)."""
    from napari_emseg.training.checkpoint import load_checkpoint

    last = run / "last.pt"
    if last.is_file():
        return json.loads(load_checkpoint(last).get("history", "[]"))
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@functools.cache
def _block(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, float]:
    """(image, ids, reference labels, membrane map, reference index, pixel nm) of a block."""
    from napari_emseg.inference.membrane import predict_membrane

    image_file, ids_file, depth, ref, pixel_nm = BLOCKS[name]
    image = tifffile.imread(DATA / image_file)[:depth]
    ids = tifffile.imread(DATA / ids_file)[:depth].astype(np.uint32)
    labels = np.zeros_like(ids)
    labels[ref] = expand_labels(ids[ref], 10)
    return image, ids, labels, predict_membrane(image, pixel_nm=pixel_nm), ref, pixel_nm


def training_are(card: str) -> float:
    """Mean ARE over the training blocks of the learned propagator with these weights."""
    from napari_emseg.metrics import adapted_rand_error
    from napari_emseg.propagation import propagate

    scores = []
    for name in BLOCKS:
        image, ids, labels, membrane, ref, pixel_nm = _block(name)
        voxel = (50.0, 4.0, 4.0) if pixel_nm == 4.0 else (pixel_nm,) * 3
        out = propagate(
            image,
            labels,
            ref,
            membrane=membrane,
            method="cconvlstm",
            weights=card,
            pixel_nm=pixel_nm,
            voxel_size=voxel,
        )
        scores.append(adapted_rand_error(out, ids))
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


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(ship(Path(folder)), flush=True)
