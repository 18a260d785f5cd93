"""``simulate-proofreading``: count the edits a simulated proofreader needs (issue #16).

The handler follows :mod:`napari_emseg.cli.commands`: heavy imports happen inside it (so
``--help`` stays fast), problems a user can fix raise :class:`UsageError` (one line, exit 2) and
every output is checked before the long work starts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from napari_emseg.cli.commands import UsageError

PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _pyplot():
    """matplotlib's pyplot without a display, or a one-line error saying how to get it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise UsageError("--plot needs matplotlib: pip install matplotlib") from err
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
        from napari_emseg.cli.commands import _check_output

        out = _check_output(args.output, args.overwrite)
    plot = None
    if args.plot:
        from napari_emseg.io.write_checks import check_output_path

        plot = check_output_path(args.plot, args.overwrite, suffixes=PLOT_SUFFIXES)
        _pyplot()  # refuse a missing matplotlib before the long work
    return out, plot


def _cmd_simulate(args: argparse.Namespace) -> int:
    from napari_emseg.cli.commands import _progress_printer, _read_image
    from napari_emseg.io import write_labels_tiff
    from napari_emseg.pipeline import method_options, segment
    from napari_emseg.proofreading.oracle import simulate_proofreading

    out, plot = _check_args(args)
    volume = _read_image(args.input, args.voxel_size)
    shape = volume.data.shape
    depth = shape[0]
    if args.ref_slice is not None and not 0 <= args.ref_slice < depth:
        raise UsageError(f"--ref-slice {args.ref_slice} is outside 0..{depth - 1} of {args.input}")
    gt = _read_ids(args.gt, shape, "ground truth")
    if not gt.any():
        raise UsageError(f"ground truth {args.gt} is 0 everywhere: nothing to score")
    progress = _progress_printer(args.quiet)
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
        method_options=method_options(args.method, voxel_size),
        model=args.model,
        device=args.device,
        progress=progress,
    )
    if out is not None:
        write_labels_tiff(
            out, result.labels, scale=volume.scale, unit=volume.unit, overwrite=args.overwrite
        )
    if plot is not None:
        draw_curves(
            {Path(args.labels or args.input).name: result.curve()},
            plot,
            target_are=args.target_are,
            title=f"simulated proofreading of {Path(args.input).name}",
        )
    report = summary(result, out)
    if args.json:
        print(json.dumps(report))
    else:
        for key in ("initial_are", "final_are", "reached", "stop_reason", "actions"):
            print(f"{key:<16} {report[key]}")
        print(f"{'engine_seconds':<16} {report['engine_seconds']}")
    return 0


def add_simulate_parser(sub) -> argparse.ArgumentParser:
    """Add ``simulate-proofreading`` to the CLI's subcommands."""
    from napari_emseg.pipeline import DEVICE_CHOICES, default_method, list_methods

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
    p.add_argument(
        "--method",
        default=default_method(),
        choices=list_methods(),
        help="propagator of the repropagations (the Proofread widget's)",
    )
    p.add_argument(
        "--no-repropagation",
        action="store_true",
        help="never repropagate (a user without the plugin's propagation)",
    )
    p.add_argument("--membrane", help="membrane probability TIFF (default: predicted)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", help="draw ARE against edits into this .png, .pdf or .svg")
    p.add_argument("-o", "--output", help="write the final labels to this TIFF")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--model", metavar="NAME", help="membrane model (default: the default model)")
    p.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help=f"where networks run: {', '.join(DEVICE_CHOICES)} or cuda:N",
    )
    p.add_argument(
        "--voxel-size",
        type=float,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help="voxel size in nm (default: from the file's metadata)",
    )
    p.set_defaults(run=_cmd_simulate)
    return p
