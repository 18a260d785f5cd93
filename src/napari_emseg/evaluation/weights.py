"""Ship fine-tuned propagation weights only when they beat the shipped ones on training data.

A ``train propagation --init-from`` run validates the weights it started from first (step 0).
Its weights replace the package's when (1) its best closed-loop IoU came after step 0 and
(2) the end metric, the mean adapted Rand error of the whole propagation on the training
blocks (:func:`training_are`), is lower than with the shipped weights: the crop IoU alone
misled once (docs/propagation.md, notes).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from napari_emseg.evaluation.data import Block


def run_history(run: str | Path) -> list[dict]:
    """Every validation of a training run, over all its resumed calls (``last.pt`` keeps them;
    a run without one has ``metrics.jsonl``)."""
    run = Path(run)
    last = run / "last.pt"
    if last.is_file():
        from napari_emseg.training.checkpoint import load_checkpoint

        return json.loads(load_checkpoint(last).get("history", "[]"))
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def with_default_membrane(blocks: Sequence[Block]) -> list[Block]:
    """``blocks``, each with the default membrane model's map at its pixel size."""
    from napari_emseg.inference.membrane import predict_membrane

    for block in blocks:
        block.membrane = predict_membrane(block.image, pixel_nm=block.pixel_nm)
    return list(blocks)


def training_are(card: str | Path, blocks: Sequence[Block]) -> float:
    """Mean ARE over ``blocks`` (each with its ``membrane``) of the learned propagator with
    the weights of ``card``, from each block's ground-truth reference."""
    from napari_emseg.metrics import adapted_rand_error
    from napari_emseg.propagation import propagate

    scores = []
    for block in blocks:
        out = propagate(
            block.image,
            block.reference(),
            block.ref,
            membrane=block.membrane,
            method="cconvlstm",
            weights=str(card),
            pixel_nm=block.pixel_nm,
            voxel_size=block.voxel_size,
        )
        scores.append(adapted_rand_error(out, block.gt))
    return float(np.mean(scores))


def ship(run: str | Path, weights: str | Path, score: Callable[[Path], float]) -> str:
    """Copy the run's weights and card into ``weights`` when they pass both tests; say what
    was done in one line. ``score(card)`` is the end metric (lower is better), e.g.
    :func:`training_are` on the training blocks. The card written records both scores."""
    run, weights = Path(run), Path(weights)
    records = run_history(run)
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
        shutil.copy(weights / card_file.name, shipped_card)
        shutil.copy(weights / card["weights"], Path(folder) / card["weights"])
        before = score(shipped_card)
    after = score(card_file)
    scores = f"crop IoU {start['val_iou']:.4f} -> {best['train_closed_loop_iou']:.4f}, "
    scores += f"training ARE {before:.4f} -> {after:.4f}"
    if after >= before:
        return f"{card['name']}: kept the shipped weights ({scores})"
    shipped = json.loads((weights / card_file.name).read_text())
    steps = max(r["step"] for r in records)
    card["metrics"]["start_closed_loop_iou"] = round(start["val_iou"], 4)
    card["metrics"]["training_are"] = round(after, 4)
    card["description"] = (
        f"{shipped['description'].split(' Fine-tuned')[0]} Fine-tuned {steps} steps from those "
        f"weights on the maps of the default membrane model ({scores}; best at step "
        f"{best['step']})."
    )
    shutil.copy(run / card["weights"], weights / card["weights"])
    (weights / card_file.name).write_text(json.dumps(card, indent=2) + "\n")
    return f"{card['name']}: shipped step {best['step']} ({scores})"
