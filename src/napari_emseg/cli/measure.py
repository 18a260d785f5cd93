"""``evaluate``, ``sample`` and ``benchmark``: scores, the synthetic test stack and timings."""

from __future__ import annotations

import argparse

from napari_emseg.cli.common import (
    UsageError,
    add_device_option,
    add_model_option,
    add_run_options,
    emit,
)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from napari_emseg.io import read_volume
    from napari_emseg.pipeline import evaluate

    args.progress.stage(f"reading {args.pred} and {args.gt}")
    pred = read_volume(args.pred).data
    gt = read_volume(args.gt, as_labels=True).data
    if pred.dtype.kind == "f" and (pred.min() < 0 or pred.max() > 1):
        raise UsageError(f"{args.pred} is a float map outside [0, 1]; give membrane probabilities")
    args.progress.stage("scoring")
    emit(args, {k: round(float(v), 6) for k, v in evaluate(pred, gt).items()})
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from napari_emseg.cli.files import check_output
    from napari_emseg.datasets.synthetic import make_synthetic_stack
    from napari_emseg.io import write_image_tiff, write_labels_tiff
    from napari_emseg.io.outputs import OutputSet

    out = check_output(args.output, args.overwrite)
    labels_out = check_output(args.labels_out, args.overwrite) if args.labels_out else None
    args.progress.stage("generating the synthetic stack")
    stack = make_synthetic_stack(tuple(args.shape), seed=args.seed)
    with OutputSet() as outputs:
        with outputs.writing(out) as target:
            write_image_tiff(target, stack.image, scale=stack.scale, unit="nm")
        if labels_out is not None:
            with outputs.writing(labels_out) as target:
                write_labels_tiff(target, stack.labels, scale=stack.scale, unit="nm")
        outputs.commit()
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from napari_emseg.evaluation.speed import run_benchmark

    result = run_benchmark(
        quick=args.quick, device=args.device, model=args.model, progress=args.progress
    )
    if args.json:
        emit(args, result)
        return 0
    args.progress.end_line()
    rows = _flat(result)
    width = max(map(len, rows))
    for key, value in rows.items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    return 0


def _flat(result: dict, prefix: str = "") -> dict:
    """Nested fields as ``outer.inner`` rows of the text table.

    Examples
    --------
    >>> _flat({"a": 1, "cases": {"b": {"s": 2.0}}})
    {'a': 1, 'cases.b.s': 2.0}
    """
    rows: dict = {}
    for key, value in result.items():
        if isinstance(value, dict):
            rows.update(_flat(value, f"{prefix}{key}."))
        else:
            rows[f"{prefix}{key}"] = value
    return rows


def add_measure_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate``, ``sample`` and ``benchmark``."""
    p = sub.add_parser("evaluate", help="score labels or a membrane map against ground truth")
    p.add_argument("--pred", required=True, help="labels, or a membrane map in [0, 1]")
    p.add_argument("--gt", required=True, help="ground-truth labels (0 = boundary, ignored)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=_cmd_evaluate)

    p = sub.add_parser("sample", help="write the synthetic EM sample stack (and its labels)")
    add_run_options(p, output_help="image TIFF to write")
    p.add_argument("--labels-out", help="also write the ground-truth labels TIFF")
    p.add_argument("--shape", type=int, nargs=3, default=(16, 256, 256), metavar=("Z", "Y", "X"))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_cmd_sample)

    p = sub.add_parser("benchmark", help="measure the engine's speed on this machine")
    p.add_argument("--quick", action="store_true", help="smaller stack, fewer repeats")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_model_option(p)
    add_device_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=_cmd_benchmark)
