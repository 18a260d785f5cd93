"""Rows of the propagation study (docs/propagation.md): every propagator from one reference.

Each row runs one way of filling a block from its reference slice (or without one: waterz) on
the block's membrane map (``Block.membrane``, computed once by the caller) and scores it
against the block's 3D ground truth.

The membrane map is computed once per block at its pixel size (resampled to the model's, as
``segment`` does). Rows: the reference copied to every slice (a lower bar), the classical
``watershed`` propagator, waterz agglomeration of the membrane map (the seed paper's baseline,
best threshold against the ground truth), the learned ``cconvlstm`` propagator (ST, STL, STN,
STC) when registered, and the fully automatic pipeline (reference slice from the 2D watershed
of the membrane map). Every row is scored with the 3D adapted Rand error and VOI and timed with
``time.perf_counter``.
"""

from __future__ import annotations

import re
import sys
import time
import traceback
from dataclasses import dataclass

import numpy as np

from napari_emseg.evaluation.data import Block, gala_block, isbi_block
from napari_emseg.evaluation.machine import timed
from napari_emseg.evaluation.report import markdown_table, number
from napari_emseg.evaluation.scoring import score
from napari_emseg.evaluation.waterz import INSTALL_HINT, boundary_affinities, waterz_available
from napari_emseg.models.cards import PROPAGATION_VARIANTS

LEARNED = "cconvlstm"
VARIANTS = PROPAGATION_VARIANTS
METHODS = ("copy", "watershed", "waterz", *VARIANTS, "auto-watershed", "auto-stc")
# waterz scoring functions (both ship prebuilt in the waterz wheel): the mean affinity of an edge,
# waterz's default, and its median (50th percentile from 256-bin histograms), the merge function
# the waterz authors recommend in their MALA paper (Funke et al. 2018).
WATERZ_SCORES = {
    "median affinity": "OneMinus<HistogramQuantileAffinity<RegionGraphType, 50, ScoreValue, 256>>",
    "mean affinity": "OneMinus<MeanAffinity<RegionGraphType, ScoreValue>>",
}
# 0.01 .. 0.04, then 0.05 .. 0.95: the median's best on ISBI lies at the low end.
WATERZ_THRESHOLDS = [0.01, 0.02, 0.03, 0.04] + [round(0.05 * k, 2) for k in range(1, 20)]
# How a learned variant without weights is told apart from a real failure (which is printed).
MISSING_WEIGHTS = re.compile(r"\b(weights?|trained|checkpoint)\b", re.IGNORECASE)


@dataclass
class Row:
    """One row of a propagation table; scores stay None for a row that could not run."""

    method: str
    reference: str
    are: float | None = None
    split: float | None = None
    merge: float | None = None
    seconds: float | None = None
    objects: int | None = None
    note: str = ""


def study_blocks(*, data=None, quick: bool = False) -> list[tuple[Block, str]]:
    """The held-out blocks (gala test, ISBI 2012 slices 20-29), each with how the report names
    its reference; ``quick``: at most 16 slices of 256 x 256 around it (a smoke run)."""
    gala = gala_block("test", name="gala FIB-SEM medulla, test block", data=data)
    isbi = isbi_block(20, 30, name="ISBI 2012, training slices 20-29", data=data)
    labels = ["reference slice 25", "reference slice 25 of the stack"]
    blocks = [b.centred_crop(16, 256) if quick else b for b in (gala, isbi)]
    return list(zip(blocks, labels, strict=True))


def scored_row(
    method: str, reference: str, out: np.ndarray, gt: np.ndarray, seconds: float, note: str = ""
) -> Row:
    """A row for labels ``out``.

    Examples
    --------
    >>> gt = np.array([[[1, 1, 2]]])
    >>> scored_row("copy", "ground truth", gt, gt, 0.5)
    Row(method='copy', reference='ground truth', are=0.0, split=0.0, merge=0.0, seconds=0.5, \
objects=2, note='')
    """
    s = score(out, gt)
    return Row(method, reference, s.are, s.voi_split, s.voi_merge, seconds, s.objects, note)


def copy_row(block: Block) -> Row:
    """The ground-truth reference copied to every slice: the lower bar."""
    reference = block.reference()[block.ref]
    out, seconds = timed(lambda: np.broadcast_to(reference, block.gt.shape).copy())
    return scored_row("reference copied to every slice", "ground truth", out, block.gt, seconds)


def propagator_row(
    block: Block,
    name: str,
    reference_name: str,
    reference: np.ndarray,
    extra_seconds: float,
    method: str,
    device: str,
    **options,
) -> Row:
    """One :func:`napari_emseg.propagation.propagate` run from the 2D ``reference`` on
    ``block.membrane``; ``extra_seconds`` (making the reference) is added to its time. A learned
    method without weights becomes a note, so the other rows still run."""
    from napari_emseg.propagation import list_methods, propagate

    if method not in list_methods():
        return Row(name, reference_name, note=f"method `{method}` is not registered yet")
    labels = np.zeros(block.gt.shape, np.uint32)
    labels[block.ref] = reference
    try:
        out, seconds = timed(
            propagate,
            block.image,
            labels,
            block.ref,
            membrane=block.membrane,
            method=method,
            device=device,
            **options,
        )
    except Exception as error:  # a learned variant without weights must not stop the run
        text = f"{type(error).__name__}: {error}"
        missing = isinstance(error, FileNotFoundError) or bool(MISSING_WEIGHTS.search(str(error)))
        if not missing:
            traceback.print_exc()
        print(f"{block.name} / {name}: {text}", file=sys.stderr)
        status = "not trained" if missing else "failed"
        return Row(name, reference_name, note=f"{status} ({text})")
    return scored_row(name, reference_name, out, block.gt, seconds + extra_seconds)


def waterz_rows(block: Block) -> list[Row]:
    """waterz over all thresholds for each scoring function: the best threshold's scores."""
    name = "waterz agglomeration of the membrane map"
    if not waterz_available():
        print(
            f"waterz is not installed: skipping the waterz rows ({INSTALL_HINT})", file=sys.stderr
        )
        return [Row(name, "none", note="skipped: waterz not installed (extra `eval`)")]
    import waterz

    rows = []
    affs, affinity_seconds = timed(boundary_affinities, block.membrane)
    for label, function in WATERZ_SCORES.items():
        seconds = affinity_seconds
        results = waterz.agglomerate(affs, WATERZ_THRESHOLDS, scoring_function=function)
        best = None
        for threshold in WATERZ_THRESHOLDS:
            start = time.perf_counter()
            segmentation = next(results)  # computed here: the agglomeration goes on lazily
            seconds += time.perf_counter() - start
            are = score(segmentation, block.gt).are
            if best is None or are < best[0]:
                best = (are, threshold, segmentation.copy())
        are, threshold, segmentation = best
        note = (
            f"best threshold {threshold:.2f} of {WATERZ_THRESHOLDS[0]:.2f}-"
            f"{WATERZ_THRESHOLDS[-1]:.2f}, chosen on the ground truth; "
            f"{float(np.mean(segmentation == 0)):.1%} voxels unlabelled"
        )
        rows.append(
            scored_row(f"waterz, {label}", "none (not used)", segmentation, block.gt, seconds, note)
        )
    return rows


def evaluate_block(block: Block, methods: list[str], device: str) -> list[Row]:
    """The rows ``methods`` (names from :data:`METHODS`) of one block, in that order.

    ``auto-*`` rows start from the 2D watershed of the membrane map at the reference slice, the
    others from the ground-truth reference; learned rows bin to the block's pixel size.
    """
    from napari_emseg.segmentation.watershed import watershed_slice

    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    from_gt = ("ground truth", block.reference()[block.ref], 0.0)
    from_ws = ("2D watershed", None, 0.0)
    if any(m.startswith("auto-") for m in methods):
        auto_ref, auto_seconds = timed(watershed_slice, block.membrane[block.ref])
        from_ws = ("2D watershed", auto_ref, auto_seconds)

    def learned(variant: str) -> dict:
        return {"variant": variant, "pixel_nm": block.pixel_nm}

    # row -> (its name, (reference name, reference, seconds to make it), method, options)
    runs = {
        "watershed": ("watershed", from_gt, "watershed", {}),
        **{v: (f"{LEARNED} {v.upper()}", from_gt, LEARNED, learned(v)) for v in VARIANTS},
        "auto-watershed": ("watershed", from_ws, "watershed", {}),
        "auto-stc": (f"{LEARNED} STC", from_ws, LEARNED, learned("stc")),
    }
    rows = []
    for method in methods:
        print(f"{block.name}: {method}", file=sys.stderr, flush=True)
        if method == "copy":
            rows.append(copy_row(block))
        elif method == "waterz":
            rows.extend(waterz_rows(block))
        else:
            name, (reference_name, reference, extra), propagator, options = runs[method]
            rows.append(
                propagator_row(
                    block, name, reference_name, reference, extra, propagator, device, **options
                )
            )
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    header = ["method", "reference slice", "ARE", "VOI split", "VOI merge", "objects", "seconds"]
    cells = [
        [r.method, r.reference, number(r.are), number(r.split), number(r.merge), r.objects]
        + [number(r.seconds, 1), r.note]
        for r in rows
    ]
    return "\n".join(markdown_table([*header, "notes"], cells))


def find(rows: list[Row], method: str, reference: str) -> Row | None:
    """The scored row of ``method`` from ``reference``, if any."""
    for r in rows:
        if r.method == method and r.reference == reference and r.are is not None:
            return r
    return None


def targets(name: str, rows: list[Row]) -> str:
    """Issue #4's targets checked on one block's rows: STC at most half the classical
    propagator's and waterz's error, and the ablation ordered ST > STL > STN > STC."""
    stc = find(rows, f"{LEARNED} STC", "ground truth")
    classical = find(rows, "watershed", "ground truth")
    waterz = [r for r in rows if r.method.startswith("waterz") and r.are is not None]
    best_waterz = min(waterz, key=lambda r: r.are) if waterz else None
    lines = [f"- **{name}**:"]
    if stc is None:
        lines.append("  - STC was not measured here, so neither target can be checked.")
        return "\n".join(lines)
    for label, other in (("the classical propagator", classical), ("waterz", best_waterz)):
        if other is None:
            lines.append(f"  - STC against {label}: {label} not measured.")
            continue
        verdict = "met" if stc.are <= other.are / 2 else "NOT met"
        lines.append(
            f"  - STC ARE {stc.are:.3f} against half of {label}'s ({other.are:.3f} / 2 = "
            f"{other.are / 2:.3f}): {verdict}."
        )
    ablation = [find(rows, f"{LEARNED} {v.upper()}", "ground truth") for v in VARIANTS]
    if all(r is not None for r in ablation):
        values = [r.are for r in ablation]
        ordered = all(a > b for a, b in zip(values, values[1:], strict=False))
        measured = ", ".join(f"{v.upper()} {a:.3f}" for v, a in zip(VARIANTS, values, strict=True))
        verdict = "ordered" if ordered else "NOT ordered"
        lines.append(f"  - Ablation {measured}: {verdict} as in the paper (ST > STL > STN > STC).")
    else:
        lines.append("  - Ablation: not every variant was measured.")
    return "\n".join(lines)


def run_blocks(
    blocks: list[Block], methods: list[str], *, model: str, device: str = "cpu"
) -> list[tuple[list[Row], float]]:
    """Each block's membrane map of ``model`` (at its pixel size, set as ``block.membrane``)
    and its :func:`evaluate_block` rows, with the map's seconds."""
    from napari_emseg.inference.membrane import predict_membrane

    results = []
    for block in blocks:
        print(f"{block.name}: membrane ({model})", file=sys.stderr, flush=True)
        block.membrane, seconds = timed(
            predict_membrane, block.image, model=model, device=device, pixel_nm=block.pixel_nm
        )
        results.append((evaluate_block(block, methods, device), seconds))
    return results
