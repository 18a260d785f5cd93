"""The ``napari-emseg`` command line: the engine without a GUI, through the one facade.

Errors a user can fix print one line on stderr and exit with status 2; no traceback unless
``--debug`` is given. An existing output is never overwritten without ``--overwrite``, and
outputs are checked before any long computation starts. Everything heavy (torch, the engine)
is imported inside the handlers, so ``--help`` answers at once.
"""

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

EXIT_USAGE = 2
MODEL_COMMANDS = ("segment", "predict-membrane", "propagate", "benchmark")  # --model is a card
# Without a terminal (a Slurm log, a pipe), one progress line at most this often.
LOG_EVERY_S = 5.0


class UsageError(Exception):
    """A problem the user can fix; its message is one line."""


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, unless it has none or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not _has_default(action):
            return text
        return f"{text} (default: %(default)s)"


def _has_default(action: argparse.Action) -> bool:
    """An option whose default is worth showing (not None, False or suppressed)."""
    quiet = action.default is None or action.default is False
    return bool(action.option_strings) and not quiet and action.default != argparse.SUPPRESS


def _progress_printer(quiet: bool):
    """Progress on stderr: a live line on a terminal, else a plain line every few seconds."""
    if quiet:
        return None
    live = sys.stderr.isatty()
    last = [0.0]

    def show(done: int, total: int, message: str) -> None:
        percent = 100 * done // max(total, 1)
        if live:
            sys.stderr.write(f"\r{message[:60]:<60} {percent:3d}%")
            if done >= total:
                sys.stderr.write("\n")
        else:
            now = time.monotonic()
            if now - last[0] < LOG_EVERY_S and done < total:
                return
            last[0] = now
            stamp = time.strftime("%H:%M:%S")
            sys.stderr.write(f"{stamp} {percent:3d}% ({done}/{total}) {message}\n")
        sys.stderr.flush()

    return show


def _check_output(path: str, overwrite: bool) -> Path:
    """Refuse a bad output before any long computation (the writers check again)."""
    from napari_emseg.io.write_checks import check_output_path

    return check_output_path(path, overwrite)


def _read_image(spec: str, voxel_size=None):
    from napari_emseg.pipeline import read_volume

    volume = read_volume(spec, as_labels=False, voxel_size=voxel_size)
    if volume.data.shape[0] == 1:
        warnings.warn(
            f"{spec} holds one 2D image: it is treated as a one-slice stack (nothing to propagate)",
            UserWarning,
            stacklevel=2,
        )
    return volume


def _cmd_segment(args: argparse.Namespace) -> int:
    from napari_emseg.io import write_image_tiff, write_labels_tiff
    from napari_emseg.pipeline import segment

    if Path(args.output).suffix.lower() == ".zarr":
        return _cmd_segment_blockwise(args)
    blockwise_options = {
        "--dask": args.dask,
        "--scheduler": args.scheduler,
        "--block": args.block,
        "--halo": args.halo,
        "--workers": args.workers,
    }
    given = [name for name, value in blockwise_options.items() if value is not None]
    if given:
        raise UsageError(
            f"{', '.join(given)} segment block by block into OME-Zarr: give -o LABELS.zarr"
        )
    out = _check_output(args.output, args.overwrite)
    membrane_out = _check_output(args.membrane_out, args.overwrite) if args.membrane_out else None
    volume = _read_image(args.input, args.voxel_size)
    result = segment(
        volume,
        model=args.model,
        device=args.device,
        ref_slice=args.ref_slice,
        propagation=args.propagation,
        start=args.start,
        progress=_progress_printer(args.quiet),
    )
    write_labels_tiff(
        out, result.labels, scale=volume.scale, unit=volume.unit, overwrite=args.overwrite
    )
    if membrane_out is not None:
        write_image_tiff(
            membrane_out,
            result.membrane,
            scale=volume.scale,
            unit=volume.unit,
            overwrite=args.overwrite,
        )
    print(json.dumps(_summary(out, result.labels, result.ref_slice)))
    return 0


def _cmd_segment_blockwise(args: argparse.Namespace) -> int:
    """``segment INPUT -o OUT.zarr``: blockwise, here or on a dask cluster (--dask/--scheduler)."""
    from contextlib import nullcontext

    from napari_emseg.blockwise.cluster import dask_client
    from napari_emseg.blockwise.run import DEFAULT_BLOCK, DEFAULT_HALO, segment_blockwise
    from napari_emseg.io.ome_zarr import check_zarr_output

    if args.workers is not None and args.dask != "local":
        raise UsageError("--workers sets the size of a local cluster: use it with --dask local")
    check_zarr_output(args.output, args.overwrite)
    if args.membrane_out:
        check_zarr_output(args.membrane_out, args.overwrite)
    args.propagation = args.propagation or "watershed"  # blockwise is measured with it
    if args.dask == "local" or args.scheduler:
        cluster = dask_client(scheduler=args.scheduler, workers=args.workers)
    else:
        cluster = nullcontext(None)
    with cluster as client:
        result = segment_blockwise(
            args.input,
            args.output,
            block_shape=args.block or DEFAULT_BLOCK,
            halo=args.halo or DEFAULT_HALO,
            model=args.model,
            device=args.device,
            propagation=args.propagation,
            start=args.start,
            ref_slice=args.ref_slice,
            scale=args.voxel_size,
            unit="nm" if args.voxel_size else None,
            membrane_output=args.membrane_out,
            client=client,
            overwrite=args.overwrite,
            progress=_progress_printer(args.quiet),
        )
    print(
        json.dumps(
            {
                "output": str(result.labels),
                "membrane_output": str(result.membrane) if result.membrane else None,
                "objects": result.objects,
                "blocks": result.blocks,
                "matched_pairs": result.matches,
                "block_shape": list(result.grid.block_shape),
                "halo": list(result.grid.halo),
            }
        )
    )
    return 0


def _summary(out: Path, labels, ref_slice: int | None) -> dict:
    """What ``segment`` prints: the output, its object count and objects per slice."""
    import numpy as np

    per_slice = [np.count_nonzero(np.unique(plane)) for plane in labels]
    return {
        "output": str(out),
        "objects": int(np.count_nonzero(np.unique(labels))),
        "median_objects_per_slice": float(np.median(per_slice)),
        "ref_slice": ref_slice,
    }


def _cmd_predict(args: argparse.Namespace) -> int:
    from napari_emseg.io import write_image_tiff
    from napari_emseg.pipeline import predict_membrane

    out = _check_output(args.output, args.overwrite)
    volume = _read_image(args.input, args.voxel_size)
    prob = predict_membrane(
        volume, model=args.model, device=args.device, progress=_progress_printer(args.quiet)
    )
    write_image_tiff(out, prob, scale=volume.scale, unit=volume.unit, overwrite=args.overwrite)
    return 0


def _reference_labels(labels, shape: tuple[int, ...], ref_slice: int):
    """A label volume from a 3D volume or from a 2D image of the reference slice."""
    import numpy as np

    labels = np.asarray(labels)
    if labels.shape == shape:
        return labels
    plane = labels[0] if labels.ndim == 3 and labels.shape[0] == 1 else labels
    if plane.shape != shape[1:]:
        raise UsageError(
            f"labels shape {labels.shape} fits neither the image {shape} nor one slice "
            f"{shape[1:]}; give a label volume or a 2D label image of slice {ref_slice}"
        )
    volume = np.zeros(shape, np.uint32 if plane.dtype.itemsize <= 4 else plane.dtype)
    volume[ref_slice] = plane
    return volume


def _cmd_propagate(args: argparse.Namespace) -> int:
    from napari_emseg.io import write_labels_tiff
    from napari_emseg.pipeline import propagate, read_volume

    out = _check_output(args.output, args.overwrite)
    volume = _read_image(args.input, args.voxel_size)
    depth = volume.data.shape[0]
    if not 0 <= args.ref_slice < depth:
        raise UsageError(f"--ref-slice {args.ref_slice} is outside 0..{depth - 1} of {args.input}")
    if args.method != "cconvlstm" and (args.variant or args.propagation_weights):
        raise UsageError("--variant and --propagation-weights apply to --method cconvlstm")
    labels_volume = read_volume(args.labels, as_labels=True)
    if labels_volume.data.dtype.kind not in "iu":
        raise UsageError(f"labels {args.labels} hold {labels_volume.data.dtype}, not integer ids")
    labels = _reference_labels(labels_volume.data, volume.data.shape, args.ref_slice)
    membrane = None
    if args.membrane:
        membrane = read_volume(args.membrane, as_labels=False).data
        if membrane.shape != volume.data.shape:
            raise UsageError(
                f"membrane map {args.membrane} has shape {membrane.shape}, the image "
                f"{volume.data.shape}; predict it from the same input"
            )
    result = propagate(
        volume,
        labels,
        args.ref_slice,
        membrane=membrane,
        method=args.method,
        model=args.model,
        device=args.device,
        variant=args.variant,
        weights=args.propagation_weights,
        progress=_progress_printer(args.quiet),
    )
    write_labels_tiff(
        out, result.labels, scale=volume.scale, unit=volume.unit, overwrite=args.overwrite
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from napari_emseg.io import read_volume
    from napari_emseg.pipeline import evaluate

    pred = read_volume(args.pred).data
    gt = read_volume(args.gt, as_labels=True).data
    if pred.dtype.kind == "f" and (pred.min() < 0 or pred.max() > 1):
        raise UsageError(f"{args.pred} is a float map outside [0, 1]; give membrane probabilities")
    print(json.dumps({k: round(float(v), 6) for k, v in evaluate(pred, gt).items()}))
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from napari_emseg.datasets.synthetic import make_synthetic_stack
    from napari_emseg.io import write_image_tiff, write_labels_tiff

    out = _check_output(args.output, args.overwrite)
    labels_out = _check_output(args.labels_out, args.overwrite) if args.labels_out else None
    stack = make_synthetic_stack(tuple(args.shape), seed=args.seed)
    write_image_tiff(out, stack.image, scale=stack.scale, unit="nm", overwrite=args.overwrite)
    if labels_out is not None:
        write_labels_tiff(
            labels_out, stack.labels, scale=stack.scale, unit="nm", overwrite=args.overwrite
        )
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from napari_emseg.benchmark.engine import run_benchmark

    result = run_benchmark(quick=args.quick, device=args.device, model=args.model)
    if args.json:
        print(json.dumps(result))
    else:
        width = max(map(len, result))
        for key, value in result.items():
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"{key:<{width}}  {shown}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from napari_emseg import __version__
    from napari_emseg.pipeline import (
        DEVICE_CHOICES,
        STARTS,
        default_method,
        list_methods,
        list_models,
    )

    models = list_models()
    methods = list_methods()
    parser = argparse.ArgumentParser(
        prog="napari-emseg",
        description="Segment neurons in EM stacks: membrane prediction, watershed, z-propagation.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"napari-emseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, *, output_help: str) -> None:
        p.add_argument("-o", "--output", required=True, help=output_help)
        p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
        p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            default=None,
            metavar="NAME",
            help=f"membrane model: {', '.join(models)} (default {models[0]}) or a card .json",
        )
        p.add_argument(
            "--device",
            default="auto",
            metavar="DEVICE",
            help=f"where networks run: {', '.join(DEVICE_CHOICES)} or cuda:N "
            "(default auto: cuda > mps > cpu)",
        )

    def voxel_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--voxel-size",
            type=float,
            nargs=3,
            metavar=("Z", "Y", "X"),
            help="voxel size in nm (default: from the file's metadata)",
        )

    inputs = "a TIFF stack, a folder of slices, file.h5[:dataset] or a Zarr array"
    p = sub.add_parser("segment", help="membrane map, watershed and propagation to 3D labels")
    p.add_argument("input", help=inputs)
    common(p, output_help="labels TIFF to write, or an OME-Zarr folder (.zarr): blockwise")
    p.add_argument(
        "--membrane-out", help="also write the membrane probability TIFF (.zarr when blockwise)"
    )
    model_options(p)
    voxel_option(p)
    p.add_argument("--ref-slice", type=int, default=None, help="reference slice (default middle)")
    p.add_argument(
        "--propagation",
        default=None,
        choices=[*methods, "none"],
        help="how ids are carried through z ('none': slices independent; default "
        f"{default_method()}, or watershed for blockwise .zarr output)",
    )
    p.add_argument(
        "--start",
        default="auto",
        choices=STARTS,
        help="first labels: 3D agglomeration of the membrane map, or a 2D watershed of the "
        "reference slice propagated through z; auto: agglomeration for near-isotropic voxels "
        "(FIB-SEM), watershed for thick sections",
    )
    blockwise = p.add_argument_group(
        "blockwise (volumes larger than memory; -o must end in .zarr; docs/large-volumes.md)"
    )
    blockwise.add_argument(
        "--block",
        type=int,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help="block (core) shape; peak memory grows with it (default 32 512 512)",
    )
    blockwise.add_argument(
        "--halo",
        type=int,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help="context around each block, at most half the block (default 8 32 32)",
    )
    where = blockwise.add_mutually_exclusive_group()
    where.add_argument(
        "--dask",
        choices=["local"],
        help="run one task per block on a new dask LocalCluster (needs napari-emseg[dask])",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing dask.distributed scheduler: tcp://host:8786 or a scheduler file",
    )
    blockwise.add_argument(
        "--workers", type=int, help="workers of the --dask local cluster (default: CPUs, max 4)"
    )
    p.set_defaults(run=_cmd_segment)

    p = sub.add_parser("predict-membrane", help="membrane probability map (float32, 1 = membrane)")
    p.add_argument("input", help=inputs)
    common(p, output_help="probability TIFF to write")
    model_options(p)
    voxel_option(p)
    p.set_defaults(run=_cmd_predict)

    p = sub.add_parser("propagate", help="propagate a reference slice's labels through z")
    p.add_argument("input", help=inputs)
    p.add_argument(
        "--labels",
        required=True,
        help="label volume (its slice Z is the reference) or 2D labels of slice Z",
    )
    p.add_argument("--ref-slice", type=int, required=True, help="index Z of the reference slice")
    common(p, output_help="propagated labels TIFF to write")
    p.add_argument("--method", default=default_method(), choices=methods, help="propagation method")
    p.add_argument("--membrane", help="membrane probability TIFF (computed when omitted)")
    p.add_argument(
        "--variant",
        default=None,
        help="cconvlstm variant: st, stl, stn or stc (default stc, the paper's best)",
    )
    p.add_argument("--propagation-weights", help="a trained .propagation.json card (cconvlstm)")
    model_options(p)
    voxel_option(p)
    p.set_defaults(run=_cmd_propagate)

    p = sub.add_parser("evaluate", help="score labels or a membrane map against ground truth")
    p.add_argument("--pred", required=True, help="labels, or a membrane map in [0, 1]")
    p.add_argument("--gt", required=True, help="ground-truth labels (0 = boundary, ignored)")
    p.set_defaults(run=_cmd_evaluate)

    p = sub.add_parser("sample", help="write the synthetic EM sample stack (and its labels)")
    common(p, output_help="image TIFF to write")
    p.add_argument("--labels-out", help="also write the ground-truth labels TIFF")
    p.add_argument("--shape", type=int, nargs=3, default=(16, 256, 256), metavar=("Z", "Y", "X"))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_cmd_sample)

    p = sub.add_parser("benchmark", help="measure the engine's speed on this machine")
    p.add_argument("--quick", action="store_true", help="smaller stack, fewer repeats")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    model_options(p)
    p.set_defaults(run=_cmd_benchmark)

    from napari_emseg.cli.train import add_train_parser

    add_train_parser(sub)
    from napari_emseg.cli.adapt import add_adapt_parser

    add_adapt_parser(sub)
    from napari_emseg.cli.simulate import add_simulate_parser

    add_simulate_parser(sub)
    _show_defaults(parser)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command's --help lists the defaults."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _show_defaults(child)
        elif action.help is None and _has_default(action):
            action.help = "(default: %(default)s)"  # argparse shows no line without help


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"napari-emseg: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 a problem the user can fix)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from napari_emseg import pipeline
    from napari_emseg._progress import Cancelled
    from napari_emseg.blockwise.cluster import ClusterError
    from napari_emseg.io import InputError, OutputExistsError

    warnings.showwarning = _one_line_warning
    try:
        if hasattr(args, "device"):
            pipeline.resolve_device(args.device)  # refuse an absent GPU before reading anything
        if args.command in MODEL_COMMANDS and args.model is not None:
            pipeline.check_model(args.model)  # refuse an unknown model before reading anything
        return args.run(args)
    except (UsageError, InputError, ValueError, Cancelled, ClusterError) as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        if isinstance(err, OutputExistsError):
            message = f"{err.path} exists and was left as it is; pass --overwrite to replace it"
        print(f"napari-emseg {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, MemoryError) as err:
        if args.debug:
            raise
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        print(
            f"napari-emseg {args.command}: error: {reason} "
            "(check disk space, permissions and paths)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"napari-emseg {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
