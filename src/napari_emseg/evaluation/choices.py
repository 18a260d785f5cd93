"""Settings chosen on training data: segment's 3D agglomeration start
(docs/results/agglomeration-choice.md) and the pixel-size rules of the membrane map and the
classical propagator (docs/results/pixel-size-choice.md)."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

from napari_emseg.evaluation.data import Block
from napari_emseg.evaluation.report import markdown_table
from napari_emseg.metrics import adapted_rand_error

# The classical propagator's sizes before they were defined in nm: pixels, whatever the scale.
PIXEL_RULE = {"erosion": 4.0, "cell_min_size": 50, "newcomer_core": 3.0, "smoothing": 1.0}
PROPAGATION_RULES = {
    "watershed, sizes in nm": ("watershed", {}),
    "watershed, sizes in 4 nm px": ("watershed", {"pixel_nm": 4.0, **PIXEL_RULE}),
    "cconvlstm": ("cconvlstm", {}),
}


def start_rule_setting(pixel_nm: float) -> tuple[float, float]:
    """(sigma in px, threshold) of segment's agglomeration start at ``pixel_nm``.

    Examples
    --------
    >>> start_rule_setting(10.0)
    (0.5, 0.8)
    """
    from napari_emseg.propagation.agglomeration import DEFAULT_SIGMA_NM, DEFAULT_THRESHOLD

    return DEFAULT_SIGMA_NM / pixel_nm, DEFAULT_THRESHOLD


def agglomeration_grid(
    block: Block, settings: Iterable[tuple[float, float]], *, membrane: np.ndarray | None = None
) -> list[tuple[float, float, float, int]]:
    """(sigma, threshold, ARE, ids) of 3D ``membrane_supervoxels`` for each (sigma, threshold),
    on ``membrane`` (default: the default model's map of the block)."""
    from napari_emseg import pipeline
    from napari_emseg.segmentation.supervoxels import membrane_supervoxels

    if membrane is None:
        membrane = pipeline.predict_membrane(block.image, voxel_size=block.voxel_size)
    rows = []
    for sigma, threshold in settings:
        sv = membrane_supervoxels(
            membrane, threshold=threshold, sigma=sigma, voxel_size=block.voxel_size, per_slice=False
        )
        rows.append((sigma, threshold, adapted_rand_error(sv, block.gt), len(np.unique(sv))))
        print(block.name, rows[-1], flush=True)
    return rows


def agglomeration_table(rows) -> list[str]:
    """
    Examples
    --------
    >>> agglomeration_table([(1.0, 0.6, 0.1234, 87)])[-1]
    '| 1 | 0.6 | 0.123 | 87 |'
    """
    cells = [[f"{s:g}", f"{t:g}", f"{a:.3f}", n] for s, t, a, n in rows]
    return markdown_table(["sigma (px)", "threshold", "ARE", "objects"], cells)


def pixel_rule_row(
    block: Block, *, model: str | None = None, resample: bool, rules=PROPAGATION_RULES
) -> tuple[bool, float, float, float, dict[str, float]]:
    """The membrane map at the block's pixel size (``resample``: via the model's), scored
    (seconds, ISBI V_rand, the agglomeration start's ARE), then each of ``rules`` (name ->
    method, options) propagating the block's reference (ground truth as it is) through it:
    ``(resample, seconds, vrand, agglomeration ARE, {rule: ARE})``."""
    from napari_emseg.inference.membrane import predict_membrane
    from napari_emseg.metrics import isbi2012_scores
    from napari_emseg.propagation import propagate
    from napari_emseg.propagation.agglomeration import agglomerate

    image, gt, voxel = block.image, block.gt, block.voxel_size
    reference = block.reference(grow=0)  # boundaries 0
    started = time.perf_counter()
    membrane = predict_membrane(image, model=model, pixel_nm=voxel[-1], resample=resample)
    seconds = time.perf_counter() - started
    vrand = isbi2012_scores(membrane, gt)["vrand"]
    agglomerated = adapted_rand_error(agglomerate(membrane, voxel_size=voxel), gt)
    errors = {}
    for name, (method, options) in rules.items():
        out = propagate(
            image, reference, block.ref, membrane=membrane, method=method, voxel_size=voxel,
            **options,
        )  # fmt: skip
        errors[name] = adapted_rand_error(out, gt)
        print(resample, name, round(errors[name], 4), flush=True)
    return resample, seconds, vrand, agglomerated, errors


def pixel_rule_table(rows) -> list[str]:
    """:func:`pixel_rule_row` results as markdown lines.

    Examples
    --------
    >>> pixel_rule_table([(True, 2.0, 0.9, 0.2, {"cconvlstm": 0.1})])[-1]
    '| resampled to 4 nm and back | 2.0 | 0.900 | 0.200 | 0.100 |'
    """
    names = list(rows[0][4])
    cells = []
    for resample, seconds, vrand, agglomerated, errors in rows:
        label = "resampled to 4 nm and back" if resample else "at the file's 10 nm"
        scores = [f"{errors[n]:.3f}" for n in names]
        cells.append([label, f"{seconds:.1f}", f"{vrand:.3f}", f"{agglomerated:.3f}", *scores])
    return markdown_table(["map", "membrane s", "V_rand", "agglomeration ARE", *names], cells)
