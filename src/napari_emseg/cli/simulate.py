"""``simulate-proofreading``: count the edits a simulated proofreader needs (issue #16).

Heavy imports happen inside the handler (so ``--help`` stays fast), problems a user can fix
raise :class:`~napari_emseg.cli.common.UsageError` (one line, exit 2), every output is checked
before the long work starts, and the labels and the plot are written all or nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

from napari_emseg.cli.common import (
    UsageError,
    add_device_option,
    add_model_option,
    add_run_options,
    add_voxel_size_option,
    emit,
)

PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _pyplot():
    """matplotlib's pyplot without a display, or a one-line error saying how to get it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise UsageError(
            "--plot needs matplotlib: pip install 'napari-emseg[plot]' (or pip install matplotlib)"
        ) from err
    return plt


def draw_curves(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    path: str | Path,
    *,
    target_are: float | None = None,
    title: str = "",
) -> Path:
    """Draw ARE against edits, one line per start, and save the figure to ``path``.

    Parameters
    ----------
    curves : mapping of str to (actions, ARE)
        One curve per label, e.g. :meth:`OracleResult.curve` of each run.
    path : str or Path
        Image file (.png, .pdf or .svg).
    target_are : float, optional
        Drawn as a dashed horizontal line.
    title : str
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for label, (actions, ares) in curves.items():
        ax.plot(actions, ares, label=label, linewidth=1.5)
    if target_are is not None:
        ax.axhline(target_are, color="grey", linestyle="--", linewidth=1, label="target")
    ax.set_xlabel("edits (merge, split, paint, undo)")
    ax.set_ylabel("adapted Rand error")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def summary(result, output: Path | None = None) -> dict:
    """The JSON the command prints: edits by kind, seconds, the ARE after every edit (its
    repropagation included) and every step as [kind, voxels changed, ARE after, seconds]."""
    _, ares = result.curve()
    return {
        "initial_are": result.initial_are,
        "final_are": result.final_are,
        "target_are": result.target_are,
        "reached": result.reached,
        "stop_reason": result.stop_reason,
        "actions": result.actions,
        "total_actions": result.total_actions,
        "repropagations": result.repropagations,
        "repropagation_seconds": round(result.repropagation_seconds, 3),
        "engine_seconds": round(result.engine_seconds, 3),
        "wall_seconds": round(result.wall_seconds, 3),
        "are_after_action": ares[1:],
        "steps": [[s.kind, s.voxels, s.are, round(s.seconds, 4)] for s in result.steps],
        "output": None if output is None else str(output),
    }


def _read_ids(spec: str, shape: tuple[int, ...], what: str):
    from napari_emseg.io import read_volume

    data = read_volume(spec, as_labels=True).data
    if data.dtype.kind not in "iub":
        raise UsageError(f"{what} {spec} holds {data.dtype}, not integer ids")
    if data.shape != shape:
        raise UsageError(f"{what} {spec} has shape {data.shape}, the image {shape}")
    return data


def _read_membrane(spec: str, shape: tuple[int, ...]):
    from napari_emseg.io import read_volume

    membrane = read_volume(spec, as_labels=False).data
    if membrane.shape != shape:
        raise UsageError(f"membrane map {spec} has shape {membrane.shape}, the image {shape}")
    return membrane


def _check_args(args: argparse.Namespace):
    if not 0.0 <= args.target_are < 1.0:
        raise UsageError(f"--target-are {args.target_are} must lie in [0, 1)")
    if args.max_actions < 0:
        raise UsageError(f"--max-actions {args.max_actions} must be >= 0")
    out = None
    if args.output:
        from napari_emseg.cli.files import check_output

        out = check_output(args.output, args.overwrite, zarr=True)
    plot = None
    if args.plot:
        from napari_emseg.io.write_checks import check_output_path

        plot = check_output_path(args.plot, args.overwrite, suffixes=PLOT_SUFFIXES)
        _pyplot()  # refuse a missing matplotlib before the long work
    return out, plot


def _cmd_simulate(args: argparse.Namespace) -> int:
    from napari_emseg.cli.files import read_image, write_labels
    from napari_emseg.evaluation.oracle import simulate_proofreading
    from napari_emseg.io.outputs import OutputSet
    from napari_emseg.pipeline import options_for, segment

    out, plot = _check_args(args)
    progress = args.progress
    progress.stage(f"reading {args.input}")
    volume = read_image(args.input, args.voxel_size)
    shape = volume.data.shape
    depth = shape[0]
    if args.ref_slice is not None and not 0 <= args.ref_slice < depth:
        raise UsageError(f"--ref-slice {args.ref_slice} is outside 0..{depth - 1} of {args.input}")
    gt = _read_ids(args.gt, shape, "ground truth")
    if not gt.any():
        raise UsageError(f"ground truth {args.gt} is 0 everywhere: nothing to score")
    membrane = _read_membrane(args.membrane, shape) if args.membrane else None
    if args.labels:
        labels = _read_ids(args.labels, shape, "labels")
        references = [] if args.ref_slice is None else [args.ref_slice]
    else:
        start = segment(
            volume,
            model=args.model,
            device=args.device,
            ref_slice=args.ref_slice,
            progress=progress,
        )
        labels = start.labels
        membrane = start.membrane if membrane is None else membrane
        references = [start.ref_slice]
    voxel_size = volume.scale if volume.unit == "nm" else None
    result = simulate_proofreading(
        volume.data,
        gt,
        labels,
        membrane=membrane,
        references=references,
        target_are=args.target_are,
        max_actions=args.max_actions,
        repropagation=not args.no_repropagation,
        method=args.method,
        method_options=options_for(args.method, voxel_size),
        model=args.model,
        device=args.device,
        progress=progress,
    )
    with OutputSet() as outputs:
        if out is not None:
            write_labels(outputs, out, result.labels, volume)
        if plot is not None:
            with outputs.writing(plot) as target:
                draw_curves(
                    {Path(args.labels or args.input).name: result.curve()},
                    target,
                    target_are=args.target_are,
                    title=f"simulated proofreading of {Path(args.input).name}",
                )
        outputs.commit()
    report = summary(result, out)
    if args.json:
        emit(args, report)
    else:
        progress.end_line()
        for key in ("initial_are", "final_are", "reached", "stop_reason", "actions"):
            print(f"{key:<16} {report[key]}")
        print(f"{'engine_seconds':<16} {report['engine_seconds']}")
    return 0


def add_simulate_parser(sub) -> argparse.ArgumentParser:
    """Add ``simulate-proofreading`` to the CLI's subcommands."""
    from napari_emseg.pipeline import default_method, list_methods

    p = sub.add_parser(
        "simulate-proofreading",
        help="count the edits a simulated proofreader needs to reach a target ARE",
        description=(
            "An oracle proofreader fixes the largest error against the ground truth, slice by "
            "slice, with the Proofread widget's merge, split and brush, repropagating like the "
            "widget; prints the edits by kind, the engine's seconds and the ARE after each edit."
        ),
    )
    p.add_argument("input", help="the EM stack (TIFF, folder of slices, HDF5 or Zarr)")
    p.add_argument("--gt", required=True, help="ground-truth ids (0 = boundary, ignored)")
    p.add_argument(
        "--labels", help="segmentation to start from (default: napari-emseg segment's result)"
    )
    p.add_argument(
        "--ref-slice",
        type=int,
        help="reference slice the start came from (default: segment's middle slice; none with "
        "--labels)",
    )
    p.add_argument("--target-are", type=float, default=0.05, help="stop at this ARE")
    p.add_argument("--max-actions", type=int, default=200, help="stop after this many edits")
    widget_method = default_method(interactive=True)
    p.add_argument(
        "--method",
        default=widget_method,
        choices=list_methods(),
        help=f"propagator of the repropagations (default: {widget_method}, the Proofread widget's)",
    )
    p.add_argument(
        "--no-repropagation",
        action="store_true",
        help="never repropagate (a user without the plugin's propagation)",
    )
    p.add_argument("--membrane", help="membrane probabilities (default: predicted)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--plot",
        help="draw ARE against edits into this .png, .pdf or .svg (needs napari-emseg[plot])",
    )
    add_run_options(
        p, output_help="write the final labels to this .tif or .zarr", output_required=False
    )
    add_model_option(p)
    add_device_option(p)
    add_voxel_size_option(p)
    p.set_defaults(run=_cmd_simulate)
    return p
