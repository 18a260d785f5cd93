"""Evaluate z-propagation on held-out EM (issue #4) and write docs/propagation.md in one run.

    .venv/bin/python scripts/evaluate_propagation.py [--quick] [--methods copy,watershed,waterz]
        [--data ../shared/data] [-o docs/propagation.md] [--notes docs/propagation_notes.md]

Held-out data (never used to train the propagation model):

- the gala FIB-SEM test block (50x100x200), reference slice 25;
- ISBI 2012 slices 20-29 with the rMiW 3D ids, reference slice 25 of the full stack (index 5).

The membrane map is the library's default model (``--membrane-model`` picks another), computed
once per dataset at the dataset's pixel size (resampled to the model's, as ``segment`` does). Rows:
the reference copied to every slice (a lower bar), the classical ``watershed`` propagator, waterz
agglomeration of the membrane map (the seed paper's baseline, best threshold against the ground
truth), the learned ``cconvlstm`` propagator (ST, STL, STN, STC) when registered, and the fully
automatic pipeline (reference slice from the 2D watershed of the membrane map). Every row is
scored with the 3D adapted Rand error and VOI and timed with ``time.perf_counter``.
``--quick`` crops to 16 slices of at most 256x256 for a smoke run; ``--methods`` picks rows.
"""

import argparse
import os
import platform
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from skimage.segmentation import expand_labels

from napari_emseg.inference.membrane import predict_membrane
from napari_emseg.metrics import adapted_rand_error, variation_of_information
from napari_emseg.models.cards import DEFAULT_MEMBRANE_MODEL, PROPAGATION_VARIANTS
from napari_emseg.propagation import list_methods, propagate
from napari_emseg.segmentation.watershed import watershed_slice

# The membrane map of every row: the library's default, as a user's `propagate` gets.
MEMBRANE_MODEL = DEFAULT_MEMBRANE_MODEL
REPO = Path(__file__).resolve().parents[1]
VARIANTS = PROPAGATION_VARIANTS
METHODS = ("copy", "watershed", "waterz", *VARIANTS, "auto-watershed", "auto-stc")
LEARNED = "cconvlstm"
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
GROW_REFERENCE = 10  # px the ground-truth reference grows into its boundary (a dense slice)


@dataclass
class Dataset:
    name: str
    image: np.ndarray
    gt: np.ndarray
    ref: int
    ref_label: str
    pixel_nm: float  # in-plane pixel size: the learned propagator bins to its own
    membrane: np.ndarray | None = None
    membrane_seconds: float = 0.0


@dataclass
class Row:
    method: str
    reference: str
    are: float | None = None
    split: float | None = None
    merge: float | None = None
    seconds: float | None = None
    objects: int | None = None
    note: str = ""


def timed(function: Callable, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def centred_crop(dataset: Dataset, depth: int, size: int) -> Dataset:
    """At most ``depth`` slices around the reference and a centred ``size`` x ``size`` window."""
    n_z, n_y, n_x = dataset.gt.shape
    z0 = int(np.clip(dataset.ref - depth // 2, 0, max(n_z - depth, 0)))
    y0, x0 = max((n_y - size) // 2, 0), max((n_x - size) // 2, 0)
    window = np.s_[z0 : z0 + depth, y0 : y0 + size, x0 : x0 + size]
    image, gt = dataset.image[window], dataset.gt[window]
    ref = dataset.ref - z0
    return Dataset(dataset.name, image, gt, ref, dataset.ref_label, dataset.pixel_nm)


def load_datasets(data: Path, quick: bool) -> list[Dataset]:
    gala_dir = data / "gala_fibsem_medulla"
    gala = Dataset(
        "gala FIB-SEM medulla, test block",
        tifffile.imread(gala_dir / "test-image.tif"),
        tifffile.imread(gala_dir / "test-gt.tif").astype(np.uint32),
        25,
        "reference slice 25",
        10.0,  # FlyEM's medulla FIB-SEM (SOURCE.md: likely 10 nm isotropic)
    )
    isbi_dir = data / "isbi2012"
    held_out = slice(20, 30)
    isbi = Dataset(
        "ISBI 2012, training slices 20-29",
        tifffile.imread(isbi_dir / "train-volume.tif")[held_out],
        tifffile.imread(isbi_dir / "train-instances-3d.tif")[held_out].astype(np.uint32),
        25 - held_out.start,
        "reference slice 25 of the stack",
        4.0,
    )
    datasets = [gala, isbi]
    if quick:
        datasets = [centred_crop(d, 16, 256) for d in datasets]
    return datasets


def score(method: str, reference: str, out: np.ndarray, gt: np.ndarray, seconds: float, note=""):
    split, merge = variation_of_information(out, gt)
    return Row(
        method,
        reference,
        are=adapted_rand_error(out, gt),
        split=split,
        merge=merge,
        seconds=seconds,
        objects=int(np.count_nonzero(np.unique(out))),
        note=note,
    )


def gt_reference(dataset: Dataset) -> np.ndarray:
    """The ground truth of the reference slice grown into its boundary pixels."""
    return expand_labels(dataset.gt[dataset.ref], GROW_REFERENCE).astype(np.uint32)


def seeded(dataset: Dataset, reference: np.ndarray) -> np.ndarray:
    labels = np.zeros(dataset.gt.shape, np.uint32)
    labels[dataset.ref] = reference
    return labels


def copy_row(dataset: Dataset) -> Row:
    reference = gt_reference(dataset)
    out, seconds = timed(lambda: np.broadcast_to(reference, dataset.gt.shape).copy())
    return score("reference copied to every slice", "ground truth", out, dataset.gt, seconds)


def propagator_row(
    dataset: Dataset,
    name: str,
    reference_name: str,
    reference: np.ndarray,
    extra_seconds: float,
    method: str,
    device: str,
    **options,
) -> Row:
    """One ``propagate`` run from ``reference``; a learned method's failure becomes a note."""
    if method not in list_methods():
        return Row(name, reference_name, note=f"method `{method}` is not registered yet")
    try:
        out, seconds = timed(
            propagate,
            dataset.image,
            seeded(dataset, reference),
            dataset.ref,
            membrane=dataset.membrane,
            method=method,
            device=device,
            **options,
        )
    except Exception as error:  # a learned variant without weights must not stop the run
        text = f"{type(error).__name__}: {error}"
        missing = isinstance(error, FileNotFoundError) or bool(MISSING_WEIGHTS.search(str(error)))
        if not missing:
            traceback.print_exc()
        print(f"{dataset.name} / {name}: {text}", file=sys.stderr)
        status = "not trained" if missing else "failed"
        return Row(name, reference_name, note=f"{status} ({text})")
    return score(name, reference_name, out, dataset.gt, seconds + extra_seconds)


def boundary_affinities(boundary: np.ndarray) -> np.ndarray:
    """(3, Z, Y, X) float32 affinities for waterz from a boundary map (1 = boundary).

    Channel ``c`` at a voxel links it to its predecessor along axis ``c`` (z, y, x), the waterz
    convention; the affinity is ``1 - max`` of the two voxels' boundary values, and 0 where there
    is no predecessor.
    """
    boundary = np.clip(np.asarray(boundary, np.float32), 0.0, 1.0)
    affs = np.zeros((3, *boundary.shape), np.float32)
    for axis in range(3):
        here = [slice(None)] * 3
        before = [slice(None)] * 3
        here[axis], before[axis] = slice(1, None), slice(None, -1)
        affs[(axis, *here)] = 1.0 - np.maximum(boundary[tuple(here)], boundary[tuple(before)])
    return np.ascontiguousarray(affs)


def waterz_rows(dataset: Dataset) -> list[Row]:
    """waterz over all thresholds per scoring function; the best threshold's scores."""
    name = "waterz agglomeration of the membrane map"
    try:
        import waterz
    except ImportError:
        print(
            "waterz is not installed: skipping the waterz rows "
            "(install it with: .venv/bin/pip install 'napari-emseg[eval]')",
            file=sys.stderr,
        )
        return [Row(name, "none", note="skipped: waterz not installed (extra `eval`)")]
    rows = []
    affs, affinity_seconds = timed(boundary_affinities, dataset.membrane)
    for label, function in WATERZ_SCORES.items():
        seconds = affinity_seconds
        results = waterz.agglomerate(affs, WATERZ_THRESHOLDS, scoring_function=function)
        best = None
        for threshold in WATERZ_THRESHOLDS:
            start = time.perf_counter()
            segmentation = next(results)  # computed here: the agglomeration goes on lazily
            seconds += time.perf_counter() - start
            are = adapted_rand_error(segmentation, dataset.gt)
            if best is None or are < best[0]:
                best = (are, threshold, segmentation.copy())
        are, threshold, segmentation = best
        unlabelled = float(np.mean(segmentation == 0))
        note = (
            f"best threshold {threshold:.2f} of {WATERZ_THRESHOLDS[0]:.2f}-"
            f"{WATERZ_THRESHOLDS[-1]:.2f}, chosen on the ground truth; "
            f"{unlabelled:.1%} voxels unlabelled"
        )
        rows.append(
            score(f"waterz, {label}", "none (not used)", segmentation, dataset.gt, seconds, note)
        )
    return rows


def evaluate(dataset: Dataset, methods: list[str], device: str) -> list[Row]:
    rows = []
    from_gt = ("ground truth", gt_reference(dataset), 0.0)
    from_ws = ("2D watershed", None, 0.0)
    if any(m.startswith("auto-") for m in methods):
        auto_ref, auto_seconds = timed(watershed_slice, dataset.membrane[dataset.ref])
        from_ws = ("2D watershed", auto_ref, auto_seconds)

    def learned(variant: str) -> dict:
        return {"variant": variant, "pixel_nm": dataset.pixel_nm}

    # row -> (its name, (reference name, reference, seconds to make it), method, options)
    runs = {
        "watershed": ("watershed", from_gt, "watershed", {}),
        **{v: (f"{LEARNED} {v.upper()}", from_gt, LEARNED, learned(v)) for v in VARIANTS},
        "auto-watershed": ("watershed", from_ws, "watershed", {}),
        "auto-stc": (f"{LEARNED} STC", from_ws, LEARNED, learned("stc")),
    }
    for method in methods:
        print(f"{dataset.name}: {method}", file=sys.stderr, flush=True)
        if method == "copy":
            rows.append(copy_row(dataset))
        elif method == "waterz":
            rows.extend(waterz_rows(dataset))
        else:
            name, (reference_name, reference, extra), propagator, options = runs[method]
            rows.append(
                propagator_row(
                    dataset, name, reference_name, reference, extra, propagator, device, **options
                )
            )
    return rows


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| method | reference slice | ARE | VOI split | VOI merge | objects | seconds | notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        note = r.note.replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {r.method} | {r.reference} | {number(r.are)} | {number(r.split)} | "
            f"{number(r.merge)} | {'-' if r.objects is None else r.objects} | "
            f"{number(r.seconds, 1)} | {note} |"
        )
    return "\n".join(lines)


def find(rows: list[Row], method: str, reference: str) -> Row | None:
    for r in rows:
        if r.method == method and r.reference == reference and r.are is not None:
            return r
    return None


def targets(dataset: Dataset, rows: list[Row]) -> str:
    """The issue's targets, checked on this dataset's rows."""
    stc = find(rows, f"{LEARNED} STC", "ground truth")
    classical = find(rows, "watershed", "ground truth")
    waterz = [r for r in rows if r.method.startswith("waterz") and r.are is not None]
    best_waterz = min(waterz, key=lambda r: r.are) if waterz else None
    lines = [f"- **{dataset.name}**:"]
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


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one (Linux), else empty."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else ""


def render(datasets, results, args, command: str, total_seconds: float) -> str:
    machine = ", ".join(
        part for part in (platform.processor() or platform.machine(), cpu_name()) if part
    )
    default = MEMBRANE_MODEL
    learned = LEARNED in list_methods()
    sections = []
    for dataset, rows in zip(datasets, results, strict=True):
        n_gt = int(np.count_nonzero(np.unique(dataset.gt)))
        shape = "x".join(map(str, dataset.gt.shape))
        sections.append(
            f"## {dataset.name} ({shape}, {dataset.ref_label})\n\n"
            f"{n_gt} ground-truth objects; the reference is index {dataset.ref} of this block.\n"
            f"Membrane map `{default}`: {dataset.membrane_seconds:.1f} s for the whole block,\n"
            "computed once and shared by every row (not in the seconds column).\n\n"
            f"{table(rows)}\n"
        )
    notes_path = Path(args.notes)
    if notes_path.is_file():
        tried = notes_path.read_text().strip()
    else:
        tried = (
            f"(No notes yet: this section is filled from `{notes_path.name}` beside this file "
            "when it exists.)"
        )
    checks = "\n".join(targets(d, r) for d, r in zip(datasets, results, strict=True))
    quick = (
        "\n**Quick smoke run (`--quick`): crops of at most 16 slices and 256x256; these numbers "
        "are not the evaluation.**\n"
        if args.quick
        else ""
    )
    learned_line = (
        f"`{LEARNED}` (the consistent ConvLSTM of the seed paper, variants ST, STL, STN, STC) is\n"
        "  registered; a variant without trained weights is listed as not trained."
        if learned
        else f"`{LEARNED}` (the consistent ConvLSTM of the seed paper) was not registered when\n"
        "  this ran, so its rows are empty."
    )
    return f"""# Propagation through z, measured on held-out data (issue #4)

Made in one run ({total_seconds / 60:.1f} min) by

    {command}

on {machine} ({platform.system()}, {os.cpu_count()} cores), networks on the
{args.device.upper()}. The machine may have been shared with other jobs: timings are indicative.
{quick}
## Protocol

- **Data, held out from training the propagation model.** The gala FIB-SEM medulla *test* block
  (Drosophila, probably 10 nm isotropic, dense 3D ids; gala's training block is a different
  block) and ISBI 2012 training slices 20-29 (4x4x50 nm ssTEM) with the rMiW 3D ids, which are
  good but not pristine (see ../shared/data/isbi2012/SOURCE.md). The membrane network never
  saw either (the default one trained on ISBI slices 0-17, the gala *train* block and the
  Gerhard VNC stack).
- **Reference slice.** Rows marked "ground truth" start from the ground truth of the reference
  slice grown {GROW_REFERENCE} px into its boundary pixels (`skimage.segmentation.expand_labels`),
  as a proofread dense slice would be. Rows marked "2D watershed" are the fully automatic
  pipeline: the reference is `watershed_slice` of the membrane map at that slice, as the paper
  does where no ground truth exists; its time is included in the row's seconds.
- **Membrane map.** The trained model `{default}` (the library's default when these figures
  were made), predicted once per dataset at its pixel size (10 nm gala, 4 nm ISBI; resampled to
  the model's as `segment` does).
- **Rows.** "Reference copied to every slice" is a trivial lower bar. `watershed` is the
  classical propagator (docs/baselines.md). waterz (Funke et al., the seed paper's baseline)
  agglomerates a 3D watershed of affinities made from the membrane map (affinity between a voxel
  and its predecessor along z, y or x = 1 - the larger of their membrane values); it does not use
  the reference slice. It runs over the thresholds 0.01-0.04 and 0.05-0.95 (step 0.05) with
  its mean-affinity and its median-affinity (MALA) merge functions, and each row reports the
  threshold with the lowest ARE. **Choosing that threshold against the ground truth favours
  waterz**: the other rows have no such oracle. On the other hand the paper fed waterz
  affinities predicted by a 3D network; these come from a 2D membrane map, a weaker cue across
  z (above all on ISBI's 50 nm sections). Its seconds are the affinities and the whole
  threshold sweep. {learned_line}
- **Metrics.** 3D adapted Rand error (ARE, the SNEMI3D definition, the seed paper's "ARI"): one
  score over the whole block, ground-truth 0 (boundary) voxels ignored, predicted 0 voxels
  counted as singletons (splits); 0 is perfect, lower is better. VOI split / merge: conditional
  entropies in bits over the same voxels (0 is perfect). Objects: ids in the result. Seconds:
  wall time (`time.perf_counter`) of the method alone.
- **Targets (issue #4).** STC's ARE at most half that of the classical propagator and of waterz,
  on held-out data in the same run; the ablation ordered as in the paper (ST > STL > STN > STC,
  the paper's SNEMI3D ARI being 0.13, 0.082, 0.045, 0.035; waterz 0.072 on SNEMI3D and 0.163 on
  its FIBSEM data).

{chr(10).join(sections)}
## Targets, checked on these numbers

{checks}

## What we tried

{tried}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "propagation.md")
    parser.add_argument("--notes", type=Path, default=REPO / "docs" / "propagation_notes.md")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated rows to run, from: {','.join(METHODS)} (default: all)",
    )
    parser.add_argument("--device", default="cpu", help="torch device for the networks")
    parser.add_argument(
        "--membrane-model",
        default=MEMBRANE_MODEL,
        help=f"membrane map for every row (default {MEMBRANE_MODEL}, the library's default)",
    )
    parser.add_argument("--quick", action="store_true", help="16 slices of <= 256x256: smoke run")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    command = " ".join([".venv/bin/python", "scripts/evaluate_propagation.py", *sys.argv[1:]])

    start = time.perf_counter()
    default = args.membrane_model
    datasets = load_datasets(args.data, args.quick)
    results = []
    for dataset in datasets:
        print(f"{dataset.name}: membrane ({default})", file=sys.stderr, flush=True)
        dataset.membrane, dataset.membrane_seconds = timed(
            predict_membrane,
            dataset.image,
            model=default,
            device=args.device,
            pixel_nm=dataset.pixel_nm,
        )
        results.append(evaluate(dataset, methods, args.device))
    text = render(datasets, results, args, command, time.perf_counter() - start)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
