"""Adaptation measured (docs/adapt.md): propagation error with the shipped membrane map and
with one adapted to the reference slice alone, as a proofreader's Adapt does.

The blocks of a split (:func:`split_blocks`): ``train`` (for choosing the settings) is the gala
FIB-SEM *train* block, reference slice 25, and ISBI 2012 slices 0-19, reference slice 10;
``test`` (held out, for the report) is the gala *test* block, reference slice 25, and ISBI
slices 20-29, reference slice 25 (index 5). The reference slice is the ground truth grown 10 px
into its boundary pixels (``expand_labels``), as a proofread slice would be. For each block the
shipped model's map is predicted once; then, for every settings (keyword options of
:func:`napari_emseg.training.adapt.adapt`) and seed, the network is adapted on the reference
slice alone, the whole block is predicted with the adapted card, and every method propagates
the reference through it with ``propagate``'s defaults (plus any options given). Rows give the
3D adapted Rand error (ARE, lower is better), VOI split / merge, the adaptation's steps and
wall seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from napari_emseg.evaluation.data import Block, blocks
from napari_emseg.evaluation.report import table_row
from napari_emseg.evaluation.scoring import Scores, score

HEADER = ["data", "membrane map", "adapt settings", "seed", "steps", "adapt s"]


def split_blocks(split: str, *, data: str | Path | None = None) -> list[Block]:
    """The split's gala block and ISBI slices, each named with its reference slice of the
    source stack (``"gala FIB-SEM test block, ref 25"``)."""
    return [replace(b, name=f"{b.name}, ref {b.first + b.ref}") for b in blocks(split, data=data)]


def score_methods(
    block: Block, labels: np.ndarray, membrane: np.ndarray, methods: Sequence[str], **options
) -> dict[str, Scores]:
    """Each method's :func:`~.scoring.score` of ``propagate`` from ``labels`` through
    ``membrane`` (the learned propagator at the block's pixel size); ``options`` go to every
    call (``device`` among them)."""
    from napari_emseg.propagation import propagate

    scores = {}
    for method in methods:
        kwargs = {"pixel_nm": block.pixel_nm} if method == "cconvlstm" else {}
        kwargs.update(options)
        out = propagate(block.image, labels, block.ref, membrane=membrane, method=method, **kwargs)
        scores[method] = score(out, block.gt)
    return scores


def row(block: Block, model: str, settings, seed, steps, seconds, scores: dict) -> str:
    """One markdown row: the run and each method's ``ARE (VOI split / merge)``.

    Examples
    --------
    >>> block = Block("gala", np.zeros((1, 1, 1)), None, 0, (1.0, 1.0, 1.0))
    >>> row(block, "adapted", "{}", 0, 40, "12", {"watershed": Scores(0.2, 0.51, 0.1, 9)})
    '| gala | adapted | {} | 0 | 40 | 12 | 0.200 (0.51 / 0.10) |'
    """
    cells = [f"{s.are:.3f} ({s.voi_split:.2f} / {s.voi_merge:.2f})" for s in scores.values()]
    return table_row([block.name, model, settings, seed, steps, seconds, *cells])


def adapt_rows(
    block: Block,
    settings: Sequence[dict],
    seeds: Sequence[int],
    methods: Sequence[str],
    *,
    base_models: Sequence[str],
    device: str = "cpu",
    folder: str | Path,
    **options,
) -> Iterator[str]:
    """Rows for one block: each base model's shipped map, then, for every settings (keyword
    options of :func:`napari_emseg.training.adapt.adapt`) and seed, the map of the network
    adapted on the block's reference slice alone (card written in ``folder``)."""
    from napari_emseg.inference.membrane import predict_membrane
    from napari_emseg.models.cards import get_card
    from napari_emseg.training.adapt import adapt

    labels = block.reference()
    for model in dict.fromkeys(base_models):
        shipped = predict_membrane(block.image, model=model, device=device)
        scores = score_methods(block, labels, shipped, methods, device=device, **options)
        yield row(block, f"shipped {get_card(model).name}", "-", "-", "-", "-", scores)
    for chosen in settings:
        for seed in seeds:
            card = Path(folder) / "adapted.json"
            start = time.perf_counter()
            adapt(
                block.image,
                labels,
                [block.ref],
                out=card,
                overwrite=True,
                device=device,
                pixel_nm=block.pixel_nm,
                seed=seed,
                **chosen,
            )
            seconds = f"{time.perf_counter() - start:.0f}"
            steps = json.loads(card.read_text())["metrics"]["adapt_steps"]
            adapted = predict_membrane(block.image, model=str(card), device=device)
            scores = score_methods(block, labels, adapted, methods, device=device, **options)
            yield row(block, "adapted", f"`{json.dumps(chosen)}`", seed, steps, seconds, scores)
