"""``napari-emseg adapt``: fine-tune the membrane network on corrected slices into a model card.

For example::

    napari-emseg adapt stack.tif --labels corrected.tif --ref-slice 25 -o my-model.json
    napari-emseg propagate stack.tif --labels corrected.tif --ref-slice 25 \\
        --model my-model.json -o labels.tif

The handler follows :mod:`napari_emseg.cli.common`: heavy imports (torch, the engine) happen
inside it, problems a user can fix raise :class:`UsageError` (one line, exit 2), and the outputs
are checked before any work starts.
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

from napari_emseg.cli.common import (
    UsageError,
    add_device_option,
    add_run_options,
    add_voxel_size_option,
    emit,
)
from napari_emseg.models.cards import DEFAULT_MEMBRANE_MODEL

# The defaults of napari_emseg.training.adapt.adapt (kept equal by tests/training/test_adapt.py;
# importing that module here would load torch for --help). The base is the model in use: the
# default membrane model unless --model names another.
DEFAULT_BASE_MODEL = DEFAULT_MEMBRANE_MODEL
DEFAULT_STEPS = 300
DEFAULT_TIME_BUDGET_S = 60.0


def _recorded_command() -> str:
    """The command line as a user would retype it, for the model card."""
    program = Path(sys.argv[0]).name
    if program in ("__main__.py", "-c", ""):
        program = "napari-emseg"
    return f"{program} {shlex.join(sys.argv[1:])}"


def _label_volume(labels, shape: tuple[int, ...], refs: list[int]):
    """A label volume from a volume, or from the 2D labels of the one reference slice."""
    import numpy as np

    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise UsageError(f"labels hold {labels.dtype}, not integer ids")
    if labels.shape == shape:
        return labels
    plane = labels[0] if labels.ndim == 3 and labels.shape[0] == 1 else labels
    if len(refs) != 1 or plane.shape != shape[1:]:
        raise UsageError(
            f"labels shape {labels.shape} fits neither the image {shape} nor one slice "
            f"{shape[1:]}; give a label volume, or 2D labels of a single --ref-slice"
        )
    volume = np.zeros(shape, plane.dtype)
    volume[refs[0]] = plane
    return volume


def _cmd_adapt(args: argparse.Namespace) -> int:
    from napari_emseg.io.write_checks import check_output_path
    from napari_emseg.models.cards import get_card
    from napari_emseg.pipeline import read_volume

    card_path = check_output_path(args.output, args.overwrite, suffixes=(".json",))
    check_output_path(card_path.with_suffix(".pt"), args.overwrite, suffixes=(".pt",))
    base = get_card(args.model or DEFAULT_BASE_MODEL)
    if not base.needs_torch:
        raise UsageError(f"--model {base.name} is classical: only a network can be adapted")
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    volume = read_volume(args.input, as_labels=False, voxel_size=args.voxel_size)
    shape = volume.data.shape
    refs = sorted(set(args.ref_slice))
    outside = [z for z in refs if not 0 <= z < shape[0]]
    if outside:
        raise UsageError(f"--ref-slice {outside} outside 0..{shape[0] - 1} of {args.input}")
    labels = _label_volume(read_volume(args.labels, as_labels=True).data, shape, refs)

    from napari_emseg.training.adapt import adapt

    voxel = volume.voxel_size_nm
    card = adapt(
        volume.data,
        labels,
        refs,
        out=card_path,
        model=base,
        steps=args.steps,
        time_budget_s=args.time_budget if args.time_budget > 0 else None,
        device=args.device,
        pixel_nm=float(voxel[-1]) if voxel else None,
        holdout=True,
        source=str(Path(args.input).resolve()),
        command=_recorded_command(),
        overwrite=args.overwrite,
        progress=args.progress,
    )
    written = json.loads(card.read_text())
    check = written["validation"]
    report = {
        "card": str(card),
        "weights": written["weights"],
        "base_model": base.name,
        **written["metrics"],
        "scored_on": check["scored_on"],
        "score_before": check["error_before"],
        "score_after": check["error_after"],
        "switched": check["kept"],
    }
    emit(args, report)
    if not args.quiet:
        verdict = "use it: it" if check["kept"] else f"keep {base.name}: the adapted model"
        better = "did better" if check["kept"] else "did not do better"
        print(f"{verdict} {better} on {check['scored_on']}", file=sys.stderr)
    return 0


def add_adapt_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Add ``adapt``; returns its parser."""
    p = subparsers.add_parser(
        "adapt",
        help="fine-tune the membrane network on corrected slices; writes a model card",
        description=(
            "Fine-tune a membrane network on the corrected labels of reference slices (their "
            "boundaries are the targets; label 0 far from every object is ignored) and write "
            "a model card .json with float16 weights beside it. Part of the corrections (the "
            "last reference slice, or the right part of the only one) is held out of training "
            "and segmented with both networks: the JSON line says both errors and whether to "
            "switch. Use it with --model CARD.json."
        ),
    )
    p.add_argument("input", help="the EM stack: TIFF, folder of slices, file.h5[:dataset], Zarr")
    p.add_argument(
        "--labels",
        required=True,
        help="label volume (its --ref-slice slices are the corrected ones) or 2D labels of the "
        "one --ref-slice",
    )
    p.add_argument(
        "--ref-slice", type=int, nargs="+", required=True, metavar="Z", help="corrected slices"
    )
    add_run_options(p, output_help="model card .json to write (and .pt)")
    p.add_argument(
        "--model",
        default=None,
        metavar="BASE",
        help="the membrane network to fine-tune (the one you use): a registered name or a "
        f"card .json (default: {DEFAULT_BASE_MODEL}, the default model)",
    )
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="most training steps")
    p.add_argument(
        "--time-budget",
        type=float,
        default=DEFAULT_TIME_BUDGET_S,
        metavar="S",
        help="stop after this many seconds in all, 0 for no limit",
    )
    add_device_option(p, what="the network trains")
    add_voxel_size_option(p, use=", written into the card")
    p.set_defaults(run=_cmd_adapt)
    return p
