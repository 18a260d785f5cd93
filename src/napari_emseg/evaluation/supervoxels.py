"""The supervoxel-vote study (docs/results/supervoxel-vote.md): settings, runs and the choice.

Both propagators fill a block from its ground-truth reference; supervoxels of the membrane map
then take the id most of their voxels were given (:func:`majority_vote`, with the rules of
``propagate``: the reference slice and unlabelled voxels do not change). A grid of settings is
scored on training blocks; the lowest mean error of the two propagators is the choice.

The settings: 3D or per slice, smoothing, merge threshold, and waterz's own supervoxels when
waterz is installed. The training blocks choose per block (gala train, reference slice 25; ISBI
2012 slices 0-19, reference 10); only the chosen settings run on the held-out blocks (gala
test, reference 25; ISBI slices 20-29, reference 25): :func:`run_study`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_emseg.evaluation.data import Block, gala_block, isbi_block
from napari_emseg.evaluation.machine import timed
from napari_emseg.evaluation.report import markdown_table
from napari_emseg.metrics import adapted_rand_error
from napari_emseg.segmentation.supervoxels import (
    DEFAULT_SIGMA_2D,
    DEFAULT_SIGMA_3D,
    DEFAULT_THRESHOLD_2D,
    DEFAULT_THRESHOLD_3D,
    is_anisotropic,
    majority_vote,
    membrane_supervoxels,
)

METHODS = ("watershed", "cconvlstm")
SIGMAS = (0.5, 1.0, 2.0)
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
WATERZ_THRESHOLDS = (0.0, 0.1, 0.2, 0.3)
PAIRS = (("gala-train", "gala-test"), ("isbi-train", "isbi-test"))  # (choice, report)


@dataclass(frozen=True)
class Setting:
    """How supervoxels are made: 3D or per slice, smoothing (px), merge threshold, or waterz."""

    per_slice: bool
    sigma: float
    threshold: float
    waterz: bool = False

    def label(self) -> str:
        """
        Examples
        --------
        >>> Setting(True, 1.0, 0.3).label(), Setting(False, 0.0, 0.1, waterz=True).label()
        ('per slice, sigma 1, threshold 0.3', 'waterz 3D, threshold 0.1')
        """
        layout = "per slice" if self.per_slice else "3D"
        if self.waterz:
            return f"waterz {layout}, threshold {self.threshold:.1f}"
        return f"{layout}, sigma {self.sigma:g}, threshold {self.threshold:.1f}"


@dataclass
class Result:
    """The error of each propagator after the vote of one setting (None: no vote)."""

    setting: Setting | None
    are: dict[str, float]
    seconds: dict[str, float]
    supervoxels: int = 0

    @property
    def mean(self) -> float:
        return float(np.mean([self.are[m] for m in self.are]))


def grid(*, waterz: bool) -> list[Setting]:
    """Every setting tried on the training blocks (waterz's own too when it is installed).

    Examples
    --------
    >>> len(grid(waterz=False)), len(grid(waterz=True))
    (48, 56)
    """
    settings = [
        Setting(per_slice, sigma, threshold)
        for per_slice in (False, True)
        for sigma in SIGMAS
        for threshold in THRESHOLDS
    ]
    if waterz:
        settings += [
            Setting(per_slice, 0.0, t, waterz=True)
            for per_slice in (False, True)
            for t in WATERZ_THRESHOLDS
        ]
    return settings


def library_default(membrane: np.ndarray) -> Setting:
    """What ``propagate`` votes with when no voxel size is given (anisotropy estimated)."""
    if is_anisotropic(None, membrane):
        return Setting(True, DEFAULT_SIGMA_2D, DEFAULT_THRESHOLD_2D)
    return Setting(False, DEFAULT_SIGMA_3D, DEFAULT_THRESHOLD_3D)


def predict_cached(block: Block, cache: Path, tag: str) -> float:
    """Set ``block.membrane`` to the default model's map, read from ``cache/tag.npy`` when an
    earlier run left it there; the seconds of the prediction (0 when read)."""
    from napari_emseg.inference.membrane import predict_membrane

    path = cache / f"{tag}.npy"
    if path.exists():
        block.membrane = np.load(path)
        return 0.0
    block.membrane, seconds = timed(predict_membrane, block.image, model=None)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, block.membrane)
    return seconds


def propagations(
    block: Block, *, device: str = "cpu", cache: Path | None = None
) -> dict[str, tuple[np.ndarray, float]]:
    """Each propagator's labels and seconds from the block's ground-truth reference on its
    membrane map (no vote); kept in the ``cache`` file (``.npz``) when one is given."""
    from napari_emseg.propagation import propagate

    if cache is not None and cache.exists():
        saved = np.load(cache)
        return {m: (saved[m], float(saved[f"{m}_seconds"])) for m in METHODS}
    labels = block.reference()
    outputs = {}
    for method in METHODS:
        options = {"pixel_nm": block.pixel_nm} if method == "cconvlstm" else {}
        print(f"{block.name}: {method}", file=sys.stderr, flush=True)
        outputs[method] = timed(
            propagate,
            block.image,
            labels,
            block.ref,
            membrane=block.membrane,
            method=method,
            device=device,
            consistency="none",
            **options,
        )
    if cache is not None:
        arrays = {m: outputs[m][0] for m in METHODS}
        arrays.update({f"{m}_seconds": np.array(outputs[m][1]) for m in METHODS})
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, **arrays)
    return outputs


def run_setting(
    block: Block, outputs: dict[str, tuple[np.ndarray, float]], setting: Setting | None
) -> Result:
    """Score each propagation of ``outputs`` after the vote of ``setting`` (None: as it is)."""
    if setting is None:
        are = {m: adapted_rand_error(out, block.gt) for m, (out, _) in outputs.items()}
        return Result(None, are, {m: s for m, (_, s) in outputs.items()})
    start = time.perf_counter()
    if setting.waterz:
        from napari_emseg.evaluation.waterz import waterz_supervoxels

        sv = waterz_supervoxels(block.membrane, setting.threshold, per_slice=setting.per_slice)
    else:
        sv = membrane_supervoxels(
            block.membrane,
            threshold=setting.threshold,
            voxel_size=block.voxel_size,
            per_slice=setting.per_slice,
            sigma=setting.sigma,
        )
    made = time.perf_counter() - start
    are, seconds = {}, {}
    for method, (out, _) in outputs.items():
        start = time.perf_counter()
        editable = out != 0  # propagate's rules: unlabelled voxels and the reference stay
        editable[block.ref] = False
        voted = majority_vote(out, sv, editable=editable)
        seconds[method] = made + time.perf_counter() - start
        are[method] = adapted_rand_error(voted, block.gt)
    return Result(setting, are, seconds, int(np.unique(sv).size))


@dataclass
class Choice:
    """The settings a training grid chose: the best, the best of the other layout, and the best
    waterz setting (None without waterz)."""

    best: Setting
    other_layout: Setting
    waterz: Setting | None


def choose(results: list[Result]) -> Choice:
    """The lowest mean error among the plain settings, and the runners-up kept for held out.

    Examples
    --------
    >>> r = [Result(Setting(False, 1, t), {"a": t}, {"a": 0}) for t in (0.3, 0.2)]
    >>> r.append(Result(Setting(True, 1, 0.5), {"a": 0.4}, {"a": 0}))
    >>> chosen = choose(r)
    >>> chosen.best.threshold, chosen.other_layout.per_slice, chosen.waterz
    (0.2, True, None)
    """
    pure = [r for r in results if r.setting is not None and not r.setting.waterz]
    best = min(pure, key=lambda r: r.mean)
    other = min(
        (r for r in pure if r.setting.per_slice != best.setting.per_slice), key=lambda r: r.mean
    )
    waterz = min(
        (r for r in results if r.setting is not None and r.setting.waterz),
        key=lambda r: r.mean,
        default=None,
    )
    return Choice(best.setting, other.setting, None if waterz is None else waterz.setting)


def table(results: list[Result], chosen: set[Setting]) -> str:
    """A markdown table of results; the chosen settings in bold."""
    rows = []
    for r in results:
        name = "no vote (propagation alone)" if r.setting is None else r.setting.label()
        if r.setting in chosen:
            name = f"**{name}** (chosen)"
        count = "-" if r.setting is None else str(r.supervoxels)
        seconds = " / ".join(f"{r.seconds[m]:.1f}" for m in METHODS)
        are = [f"{r.are[m]:.3f}" for m in METHODS]
        rows.append([name, count, *are, f"{r.mean:.3f}", seconds])
    header = ["supervoxels", "supervoxel count", "ARE watershed", "ARE cconvlstm", "mean ARE"]
    return "\n".join(markdown_table([*header, "seconds (watershed / cconvlstm)"], rows))


def gains(name: str, rows: list[Result], chosen: set[Setting]) -> str:
    """One line: the chosen setting's error against no vote (the first row)."""
    none = rows[0]
    best = next(r for r in rows if r.setting in chosen)
    parts = ", ".join(f"`{m}` {none.are[m]:.3f} -> {best.are[m]:.3f}" for m in METHODS)
    return f"- {name}, {best.setting.label()}: {parts}."


def study_blocks(*, data=None, quick: bool = False) -> dict[str, Block]:
    """The four blocks of :data:`PAIRS` by key (gala train / test, ISBI 2012 slices 0-19 /
    20-29, each with its split's reference); ``quick``: 8 x 96 x 96 around each reference."""
    found = {
        f"gala-{part}": gala_block(part, name=f"gala FIB-SEM {part} block ({role})", data=data)
        for part, role in (("train", "training"), ("test", "held-out"))
    }
    for part, first, stop, role in (("train", 0, 20, "training"), ("test", 20, 30, "held-out")):
        name = f"ISBI 2012 slices {first}-{stop - 1} ({role})"
        found[f"isbi-{part}"] = isbi_block(first, stop, name=name, data=data)
    if quick:
        for key, b in found.items():
            z0 = max(b.ref - 4, 0)
            found[key] = b.crop(np.s_[z0 : z0 + 8, :96, :96])
    return found


def run_study(blocks: dict[str, Block], outputs: dict, *, waterz: bool) -> tuple[list, list]:
    """For each pair of :data:`PAIRS`: the training grid (``waterz``: its settings too) and the
    choice, then on the held-out block only no vote, the chosen setting, the best of the other
    layout, the best waterz setting and the library default. ``outputs`` holds each block's
    :func:`propagations`. Returns ``[(train block, results, chosen)]`` and
    ``[(test block, results, chosen, library default)]``."""
    sections, held_rows = [], []
    for train_key, test_key in PAIRS:
        train, test = blocks[train_key], blocks[test_key]
        print(f"{train_key}: grid", file=sys.stderr, flush=True)
        results = [run_setting(train, outputs[train_key], s) for s in [None, *grid(waterz=waterz)]]
        choice = choose(results)
        chosen = {choice.best}
        sections.append((train, results, chosen))
        default = library_default(test.membrane)  # propagate's vote without a voxel size
        held = [None, choice.best, choice.other_layout]
        if choice.waterz is not None:
            held.append(choice.waterz)
        if default not in held:
            held.append(default)
        print(f"{test_key}: chosen settings", file=sys.stderr, flush=True)
        rows = [run_setting(test, outputs[test_key], s) for s in held]
        held_rows.append((test, rows, chosen, default))
    return sections, held_rows


def block_outputs(
    blocks: dict[str, Block], cache: Path, *, device: str = "cpu", tag: str = "", reuse: bool
) -> dict[str, dict[str, tuple[np.ndarray, float]]]:
    """Each block's membrane map (:func:`predict_cached` under ``cache``) and
    :func:`propagations` (kept in ``cache`` too with ``reuse``), by key; ``tag`` marks the
    cache files of a smoke run."""
    from napari_emseg.models.cards import DEFAULT_MEMBRANE_MODEL

    outputs = {}
    for key, block in blocks.items():
        predict_cached(block, cache, f"{key}{tag}-{DEFAULT_MEMBRANE_MODEL}")
        saved = cache / f"{key}{tag}-propagated.npz" if reuse else None
        outputs[key] = propagations(block, device=device, cache=saved)
    return outputs


def anisotropy_rows(blocks) -> str:
    """Markdown rows: each block's voxel size, the z / xy anisotropy estimated from its
    membrane map and the supervoxel layout ``propagate`` picks from it without a voxel size."""
    from napari_emseg.segmentation.supervoxels import membrane_anisotropy

    return "\n".join(
        f"| {b.name} | {' x '.join(f'{v:g}' for v in b.voxel_size)} | "
        f"{membrane_anisotropy(b.membrane):.1f} | "
        f"{'per slice' if is_anisotropic(None, b.membrane) else '3D'} |"
        for b in blocks
    )
