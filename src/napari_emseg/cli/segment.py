"""``segment``, ``predict-membrane`` and ``propagate``: the engine's operations on one stack.

Each reads its input, calls the facade once and writes its outputs (TIFF or OME-Zarr by suffix,
all or nothing: :mod:`napari_emseg.cli.files`). ``segment`` works block by block
(:mod:`napari_emseg.blockwise`) only when asked to (``--block``, ``--halo``, ``--dask``,
``--scheduler``, ``--workers``) or when the volume would not fit in memory; the suffix of the
output never changes the algorithm.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from napari_emseg.cli.common import (
    INPUT_FORMS,
    UsageError,
    add_device_option,
    add_model_option,
    add_run_options,
    add_voxel_size_option,
    emit,
)
from napari_emseg.cli.files import (
    check_output,
    is_zarr,
    read_image,
    warn_if_2d,
    write_image,
    write_labels,
)

# Peak memory of one segment run above start-up, per voxel: 23-30 bytes were measured with the
# classical model (docs/large-volumes.md); networks add their tiles. Larger volumes go blockwise.
ONE_RUN_BYTES_PER_VOXEL = 32
BLOCKWISE_OPTIONS = ("block", "halo", "dask", "scheduler", "workers")


def available_memory() -> int | None:
    """Bytes of memory this process may still take (Linux ``MemAvailable``), None if unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _open_image(spec: str, voxel_size) -> Any:
    """The input stack left on disk where its format allows: its size decides the path."""
    from napari_emseg.io import open_volume
    from napari_emseg.pipeline import checked_voxel_size

    volume = open_volume(spec, as_labels=False)
    if voxel_size is not None:
        volume = dataclasses.replace(volume, scale=checked_voxel_size(voxel_size), unit="nm")
    warn_if_2d(spec, volume)
    return volume


def _check_ref_slice(ref_slice: int | None, depth: int, spec: str) -> None:
    if ref_slice is not None and not 0 <= ref_slice < depth:
        raise UsageError(
            f"reference slice {ref_slice} is outside 0..{depth - 1} of {spec}: "
            "choose --ref-slice in that range"
        )


def _too_large(shape: tuple[int, ...]) -> str | None:
    """Why one run would not fit in memory, or None when it fits (or memory is unknown)."""
    import math

    need = math.prod(shape) * ONE_RUN_BYTES_PER_VOXEL
    free = available_memory()
    if free is None or need <= free:
        return None
    return f"needs about {need / 2**30:.1f} GiB in one run, {free / 2**30:.1f} GiB are free"


# -- segment --------------------------------------------------------------------------------------
def _cmd_segment(args: argparse.Namespace) -> int:
    from napari_emseg.io.lazy import load
    from napari_emseg.pipeline import segment

    out = check_output(args.output, args.overwrite, zarr=True)
    membrane_out = None
    if args.membrane_out:
        membrane_out = check_output(args.membrane_out, args.overwrite, zarr=True)
    if args.with_image and not is_zarr(out):
        raise UsageError("--with-image keeps the image beside the labels: give -o LABELS.zarr")
    args.progress.stage(f"reading {args.input}")
    volume = _open_image(args.input, args.voxel_size)
    _check_ref_slice(args.ref_slice, volume.data.shape[0], args.input)
    asked = [f"--{name}" for name in BLOCKWISE_OPTIONS if getattr(args, name) is not None]
    too_large = _too_large(volume.data.shape)
    if asked or too_large:
        if not is_zarr(out) or (membrane_out is not None and not is_zarr(membrane_out)):
            why = f"{args.input} {too_large}: it must be segmented"
            if asked:
                why = f"{', '.join(asked)} asked for segmenting"
            raise UsageError(
                f"{why} block by block, which writes OME-Zarr: give -o LABELS.zarr "
                "(and --membrane-out PROB.zarr)"
            )
        return _segment_blockwise(args, out, membrane_out, volume)
    volume = dataclasses.replace(volume, data=load(volume.data))
    result = segment(
        volume,
        model=args.model,
        device=args.device,
        ref_slice=args.ref_slice,
        propagation=args.propagation,
        start=args.start,
        progress=args.progress,
    )
    _write_outputs(args, volume, result.labels, out, membrane_out, result.membrane)
    summary = _summary(out, result.labels, result.ref_slice)
    voxel = None if result.voxel_size is None else list(result.voxel_size)
    emit(
        args,
        {**summary, "method": result.method, "voxel_size": voxel,
         "voxel_estimated": result.voxel_estimated, "notes": result.notes, "blockwise": False},
    )  # fmt: skip
    return 0


def _write_outputs(args, volume, labels, out, membrane_out=None, membrane=None) -> None:
    """Labels (and the image, the membrane map) written all or nothing."""
    from napari_emseg.io.outputs import OutputSet

    args.progress.stage(f"writing {out}")
    image = volume.data if getattr(args, "with_image", False) else None
    with OutputSet() as outputs:
        write_labels(outputs, out, labels, volume, image=image, progress=args.progress)
        if membrane_out is not None:
            write_image(outputs, membrane_out, membrane, volume, name="membrane")
        outputs.commit()


def _segment_blockwise(args: argparse.Namespace, out: Path, membrane_out, volume) -> int:
    """``segment`` block by block, here or on a dask cluster; the same NGFF layout as one run."""
    from contextlib import nullcontext

    from napari_emseg.blockwise.cluster import dask_client
    from napari_emseg.blockwise.run import DEFAULT_BLOCK, DEFAULT_HALO, segment_blockwise
    from napari_emseg.io.ngff import add_levels, labels_from_image_store
    from napari_emseg.io.ome_zarr import partial_path
    from napari_emseg.io.outputs import OutputSet

    if args.workers is not None and args.dask != "local":
        raise UsageError("--workers sets the size of a local cluster: use it with --dask local")
    if args.dask == "local" or args.scheduler:
        cluster = dask_client(scheduler=args.scheduler, workers=args.workers)
    else:
        cluster = nullcontext(None)
    with OutputSet() as outputs:
        engine_out = partial_path(out, "blockwise.zarr")
        staged_membrane = outputs.stage(membrane_out) if membrane_out else None
        try:
            with cluster as client:
                result = segment_blockwise(
                    args.input,
                    engine_out,
                    block_shape=args.block or DEFAULT_BLOCK,
                    halo=args.halo or DEFAULT_HALO,
                    model=args.model,
                    device=args.device,
                    propagation=args.propagation,  # None: as one run (the data decides)
                    start=args.start,
                    ref_slice=args.ref_slice,
                    scale=args.voxel_size,
                    unit="nm" if args.voxel_size else None,
                    membrane_output=staged_membrane,
                    client=client,
                    progress=args.progress,
                )
            args.progress.stage(f"writing {out}")
            image = volume.data if args.with_image else None
            with outputs.writing(out) as target:
                labels_from_image_store(engine_out, target, image=image, progress=args.progress)
            if staged_membrane is not None:
                add_levels(staged_membrane, name="membrane", progress=args.progress)
            outputs.commit()
        finally:
            _remove_folder(engine_out)
    emit(
        args,
        {
            "output": str(out),
            "membrane_output": str(membrane_out) if membrane_out else None,
            "objects": result.objects,
            "blockwise": True,
            "blocks": result.blocks,
            "matched_pairs": result.matches,
            "block_shape": list(result.grid.block_shape),
            "halo": list(result.grid.halo),
        },
    )
    return 0


def _remove_folder(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


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


# -- predict-membrane -----------------------------------------------------------------------------
def _cmd_predict(args: argparse.Namespace) -> int:
    from napari_emseg.io.outputs import OutputSet
    from napari_emseg.pipeline import predict_membrane

    out = check_output(args.output, args.overwrite, zarr=True)
    args.progress.stage(f"reading {args.input}")
    volume = read_image(args.input, args.voxel_size)
    prob = predict_membrane(volume, model=args.model, device=args.device, progress=args.progress)
    args.progress.stage(f"writing {out}")
    with OutputSet() as outputs:
        write_image(outputs, out, prob, volume, name="membrane")
        outputs.commit()
    return 0


# -- propagate ------------------------------------------------------------------------------------
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
    from napari_emseg.pipeline import propagate, read_volume

    out = check_output(args.output, args.overwrite, zarr=True)
    if args.method not in (None, "cconvlstm") and (args.variant or args.propagation_weights):
        raise UsageError("--variant and --propagation-weights apply to --method cconvlstm")
    args.progress.stage(f"reading {args.input}")
    volume = read_image(args.input, args.voxel_size)
    _check_ref_slice(args.ref_slice, volume.data.shape[0], args.input)
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
        method_options={
            k: v
            for k, v in (("variant", args.variant), ("weights", args.propagation_weights))
            if v is not None
        },
        sparse=args.sparse,
        calibrate=args.calibrate,
        progress=args.progress,
    )
    _write_outputs(args, volume, result.labels, out)
    emit(
        args,
        {
            **_summary(out, result.labels, args.ref_slice),
            "method": result.method,
            "sparse": result.sparse,
            "voxel_size": None if result.voxel_size is None else list(result.voxel_size),
            "voxel_estimated": result.voxel_estimated,
            "calibration": None if result.calibration is None else result.calibration.to_dict(),
            "notes": result.notes,
        },
    )
    return 0


# -- parsers --------------------------------------------------------------------------------------
def add_segment_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``segment``, ``predict-membrane`` and ``propagate``."""
    from napari_emseg.models.cards import PROPAGATION_VARIANTS
    from napari_emseg.pipeline import STARTS, list_methods

    methods = list_methods()
    outputs = "a .tif, or an OME-Zarr store (.zarr)"

    p = sub.add_parser("segment", help="membrane map, watershed and propagation to 3D labels")
    p.add_argument("input", help=INPUT_FORMS)
    add_run_options(p, output_help=f"labels to write: {outputs} holding them under labels/")
    p.add_argument(
        "--membrane-out",
        metavar="PROB",
        help=f"also write the membrane probabilities: {outputs}",
    )
    p.add_argument(
        "--with-image",
        action="store_true",
        help="also store the input image at the root of the .zarr output, the labels beside it",
    )
    add_model_option(p)
    add_device_option(p)
    add_voxel_size_option(p)
    p.add_argument(
        "--ref-slice", type=int, default=None, metavar="Z", help="reference slice (default middle)"
    )
    p.add_argument(
        "--propagation",
        default=None,
        choices=[*methods, "none"],
        help="how ids are carried through z ('none': slices independent; default: by the "
        "data, as propagate's --method)",
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
        "blockwise (any of these, or a volume larger than memory; -o must end in .zarr; "
        "docs/large-volumes.md)"
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
        "--workers",
        type=int,
        metavar="N",
        help="workers of the --dask local cluster (default: CPUs, max 4)",
    )
    p.set_defaults(run=_cmd_segment)

    p = sub.add_parser("predict-membrane", help="membrane probability map (float32, 1 = membrane)")
    p.add_argument("input", help=INPUT_FORMS)
    add_run_options(p, output_help=f"probabilities to write: {outputs}")
    add_model_option(p)
    add_device_option(p)
    add_voxel_size_option(p)
    p.set_defaults(run=_cmd_predict)

    p = sub.add_parser("propagate", help="propagate a reference slice's labels through z")
    p.add_argument("input", help=INPUT_FORMS)
    p.add_argument(
        "--labels",
        required=True,
        help="label volume (its slice Z is the reference) or 2D labels of slice Z",
    )
    p.add_argument("--ref-slice", type=int, required=True, help="index Z of the reference slice")
    add_run_options(p, output_help=f"propagated labels to write: {outputs}")
    p.add_argument(
        "--method",
        default=None,
        choices=methods,
        help="propagation method (default: from the data: agglomeration for near-isotropic "
        "voxels, cconvlstm for thick sections)",
    )
    tracing = p.add_mutually_exclusive_group()
    tracing.add_argument(
        "--sparse",
        dest="sparse",
        action="store_true",
        default=None,
        help="carry only the reference's objects (dots grow to their cells); unlabelled area "
        "gets no id (default: when the reference covers little of its slice)",
    )
    tracing.add_argument(
        "--dense",
        dest="sparse",
        action="store_false",
        help="every cell of the reference slice is an object; new ones may appear",
    )
    p.add_argument(
        "--no-calibrate",
        dest="calibrate",
        action="store_false",
        help="keep the default thresholds instead of choosing them on the reference slice",
    )
    p.add_argument("--membrane", help="membrane probabilities (computed when omitted)")
    p.add_argument(
        "--variant",
        default=None,
        choices=PROPAGATION_VARIANTS,
        help="cconvlstm variant (default stc, the paper's best)",
    )
    p.add_argument("--propagation-weights", help="a trained .propagation.json card (cconvlstm)")
    add_model_option(p)
    add_device_option(p)
    add_voxel_size_option(p)
    p.set_defaults(run=_cmd_propagate)
