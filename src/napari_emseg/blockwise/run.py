"""Segment a volume larger than memory block by block, here or on a dask.distributed cluster.

:func:`segment_blockwise` splits the volume into blocks (:mod:`napari_emseg.blockwise.grid`) and
runs the ordinary :func:`napari_emseg.pipeline.segment` on each block grown by a halo. When the
start is a reference slice propagated through z and blocks cut z, the layers of blocks are
*chained* (:mod:`~.chain`): the layer holding the reference slice goes first, and every later
block propagates from the slice its neighbour towards the reference labelled, so ids flow
through z as in one run. Then:

1. each block task writes its labels (local ids ``1..n``, on the whole block with halo) to a
   scratch Zarr store beside the output, and the core of its membrane map to the output;
2. the ids of neighbouring blocks are matched where their halos overlap and merged
   (:mod:`~.stitching`: disjoint id ranges, mutual-majority matches, union-find);
3. chained runs with the supervoxel vote stitch the blocks' supervoxels the same way and vote
   once over the whole volume (:mod:`~.vote`);
4. each block's core is relabelled to the final ids ``1..N`` and written to the output.

Only one block (and its halo) is in memory per task, so peak memory is set by the block shape,
not the volume. Outputs are OME-Zarr images built in hidden ``.partial`` folders and moved into
place at the end; the scratch store is removed. With a ``client`` the three steps run as one
task per block (or per overlap) on its cluster; the scratch and output folders must then be on a
filesystem that every worker sees.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from napari_emseg._progress import CancelCheck, ProgressCallback, report, stage_progress
from napari_emseg.blockwise import chain as chaining
from napari_emseg.blockwise import vote as voting
from napari_emseg.blockwise.executor import map_tasks
from napari_emseg.blockwise.grid import BlockGrid
from napari_emseg.blockwise.stitching import final_ids, id_offsets
from napari_emseg.blockwise.tasks import (
    SUPERVOXELS,
    BlockJob,
    BlockSummary,
    match_blocks,
    no_links,
    relabel_block,
    segment_block,
    tally_block,
)
from napari_emseg.io.ome_zarr import (
    check_zarr_output,
    create_image,
    multiscales,
    new_group,
    ome_unit,
    partial_path,
    replace_folder,
)
from napari_emseg.segmentation.normalization import intensity_range

DEFAULT_BLOCK = (32, 512, 512)
DEFAULT_HALO = (8, 32, 32)
_CHUNK_LIMIT = (8, 256, 256)  # output chunks: divisors of the block shape up to this size


@dataclass(frozen=True)
class BlockwiseResult:
    """Outcome of :func:`segment_blockwise`.

    Attributes
    ----------
    labels, membrane : Path or None
        The OME-Zarr stores written (``membrane`` None when not asked for).
    objects : int
        Objects in the output (ids ``1..objects``).
    blocks : int
        Number of blocks.
    matches : int
        Id pairs matched across block overlaps (merged by the stitching).
    grid : BlockGrid
        The block layout (shape, block shape and halo actually used).
    """

    labels: Path
    membrane: Path | None
    objects: int
    blocks: int
    matches: int
    grid: BlockGrid


def _estimated_voxel_size(array, *, model: str | None, device: str) -> tuple[float, ...]:
    """The facade's voxel-size estimate of the whole volume (it reads a few planes), the same
    as one run makes, said once as it says it."""
    import warnings

    from napari_emseg import pipeline

    voxel, how = pipeline.estimate_voxel_size(array, model=model, device=device)
    shown = " ".join(f"{v:g}" for v in voxel)
    warnings.warn(
        f"voxel size unknown: estimated {shown} nm (z y x), {how}; give the voxel size "
        "(--voxel-size Z Y X) if you know it",
        pipeline.VoxelSizeWarning,
        stacklevel=3,
    )
    return voxel


def segment_blockwise(
    source: str | os.PathLike[str] | Any,
    output: str | os.PathLike[str],
    *,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
    halo: Sequence[int] = DEFAULT_HALO,
    model: str | None = None,
    device: str = "auto",
    propagation: str | None = None,
    method_options: dict[str, Any] | None = None,
    start: str = "auto",
    ref_slice: int | None = None,
    chain: bool = True,
    membrane_output: str | os.PathLike[str] | None = None,
    scale: Sequence[float] | None = None,
    unit: str | None = None,
    threshold: float = 0.5,
    client: Any = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> BlockwiseResult:
    """Segment a (Z, Y, X) volume block by block into an OME-Zarr label image.

    Parameters
    ----------
    source : str, os.PathLike or array
        An input spec for :func:`napari_emseg.io.read_volume`, opened with
        :func:`~napari_emseg.io.open_volume` so that Zarr, HDF5 and uncompressed TIFF stay on
        disk and each block reads only its region (other formats are read whole first); or a
        (Z, Y, X) array: numpy, memory map, :class:`~napari_emseg.io.lazy.DiskArray`, Zarr or
        dask. With a ``client``, pass a path (every worker opens it) or a Zarr array; a numpy
        array is sent to every worker.
    output : str or os.PathLike
        The labels store to write, a folder ending in ``.zarr``.
    block_shape : (int, int, int)
        Core size of a block (z, y, x); peak memory grows with it. Output chunks divide it.
    halo : (int, int, int)
        Context on each side of a block, at most half the block shape. Neighbouring blocks
        overlap by twice the halo, where their ids are matched. In y and x it should also cover
        the membrane model's context (32 px is plenty for the shipped models).
    model, device, propagation, method_options, start, ref_slice
        As for :func:`napari_emseg.pipeline.segment`; intensities are normalised with the whole
        volume's percentiles. A start from a reference slice (``"watershed"``, or ``"auto"``
        with thick sections or an unknown voxel size) chains the blocks along z from
        ``ref_slice`` (default: the middle slice); the agglomeration start and
        ``propagation="none"`` segment every block on its own (as does ``chain=False``:
        each block from its own middle slice, linked by the stitching alone).
    membrane_output : str or os.PathLike, optional
        Also write the membrane probability map (float32) to this ``.zarr`` store.
    scale, unit : optional
        Voxel size (z, y, x) and its unit for the output metadata; by default those read from
        ``source`` (a path), else ``(1, 1, 1)`` pixels.
    threshold : float
        Matching rule of :func:`~.stitching.match_overlap`: two ids are one object
        when their common voxels are more than this fraction of each id's voxels in the overlap.
    client : distributed.Client, optional
        Run one task per block on its cluster (see :func:`~.cluster.dask_client`).
    overwrite : bool
        Replace existing outputs.
    progress, cancel : callable, optional
        ``progress(done, total, message)``; ``cancel()`` is checked between blocks (raises
        :class:`~napari_emseg._progress.Cancelled`, and nothing is written).

    Returns
    -------
    BlockwiseResult

    Examples
    --------
    >>> import tempfile
    >>> from napari_emseg.datasets.synthetic import make_synthetic_stack
    >>> image = make_synthetic_stack((8, 96, 96), seed=1).image
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     result = segment_blockwise(image, f"{folder}/seg.zarr", block_shape=(4, 96, 96),
    ...                                halo=(2, 0, 0), model="ridge")
    >>> result.blocks, result.grid.halo, result.labels.name
    (2, (2, 0, 0), 'seg.zarr')
    """
    out = check_zarr_output(output, overwrite).absolute()  # workers may run elsewhere
    membrane_out = None
    if membrane_output is not None:
        membrane_out = check_zarr_output(membrane_output, overwrite).absolute()
        if membrane_out.resolve() == out.resolve():
            raise ValueError(f"the labels and the membrane map would both be written to {out}")
    array, shared_source, found_scale, found_unit = _open(source, client)
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"expected a non-empty (Z, Y, X) volume, got shape {array.shape}")
    scale = tuple(float(s) for s in (scale if scale is not None else found_scale))
    unit_name = ome_unit(unit if unit is not None else found_unit)
    voxel = scale if unit_name == "nanometer" else None
    grid = BlockGrid(tuple(array.shape), tuple(block_shape), tuple(halo))  # type: ignore[arg-type]
    if voxel is None:  # estimated once, from the middle of the volume, as one run would
        voxel = _estimated_voxel_size(array, model=model, device=device)
    chunks = _chunks(grid.block_shape)
    value_range = intensity_range(array)
    ref_z = array.shape[0] // 2 if ref_slice is None else int(ref_slice)
    if not 0 <= ref_z < array.shape[0]:
        raise ValueError(f"reference slice {ref_z} is outside 0..{array.shape[0] - 1}")
    start = _block_start(start, voxel)
    propagation = propagation or _default_propagation(voxel)
    chained = chain and propagation != "none" and start == "watershed" and grid.grid_shape[0] > 1
    if chained:
        chaining.check_halo(grid)
    consistency = (method_options or {}).get("consistency", "supervoxels")
    vote_later = chained and consistency == "supervoxels"

    scratch = partial_path(out, "blocks")
    labels_tmp = partial_path(out)
    membrane_tmp = partial_path(membrane_out) if membrane_out is not None else None
    try:
        new_group(scratch)
        if membrane_tmp is not None:
            create_image(
                membrane_tmp,
                shape=grid.shape,
                dtype=np.float32,
                chunks=chunks,
                attrs=multiscales(membrane_out.name, scale, unit_name),  # type: ignore[union-attr]
            )
        blocks = grid.blocks()
        job = BlockJob(
            block=blocks[0],
            scratch=str(scratch),
            membrane=str(membrane_tmp) if membrane_tmp is not None else None,
            model=model,
            device=device,
            propagation=propagation,
            value_range=value_range,
            method_options=method_options,
            voxel_size=voxel,  # type: ignore[arg-type]
            start=start,
            vote_later=vote_later,
        )
        votes, sv_luts = None, [None] * len(grid)
        if start == "agglomeration":
            luts = _agglomerate_blocks(grid, job, shared_source, client, progress, cancel)
            table, matches = np.concatenate([[0], *[lut[1:] for lut in luts]]), 0
        else:
            summaries = _segment_blocks(
                grid, job, ref_z if chained else None, shared_source, client, progress, cancel
            )
            stitch = functools.partial(
                _stitch, grid, scratch=str(scratch), threshold=threshold, client=client,
                cancel=cancel,
            )  # fmt: skip
            table, offsets, matches = stitch(
                [(s.n_ids, s.core_ids, s.links) for s in summaries],
                progress=stage_progress(progress, 0.85, 0.88 if vote_later else 0.9),
            )
            luts = [_block_lut(table, offsets, s.number, s.n_ids) for s in summaries]
        if vote_later:
            votes, sv_luts = _vote(
                grid,
                summaries,
                luts,
                stitch,
                ref_z=ref_z,
                scratch=str(scratch),
                client=client,
                progress=stage_progress(progress, 0.88, 0.9),
                cancel=cancel,
            )
        objects = int(table.max(initial=0))
        create_image(
            labels_tmp,
            shape=grid.shape,
            dtype=_label_dtype(objects),
            chunks=chunks,
            attrs=multiscales(out.name, scale, unit_name),
        )
        relabel_jobs = [
            (block, lut, sv_lut) for block, lut, sv_lut in zip(blocks, luts, sv_luts, strict=True)
        ]
        map_tasks(
            relabel_block,
            relabel_jobs,
            client=client,
            shared={"scratch": str(scratch), "labels": str(labels_tmp), "votes": votes},
            progress=stage_progress(progress, 0.9, 1.0),
            cancel=cancel,
            message="writing block",
        )
        replace_folder(labels_tmp, out)
        if membrane_tmp is not None and membrane_out is not None:
            replace_folder(membrane_tmp, membrane_out)
    finally:
        for folder in (scratch, labels_tmp, membrane_tmp):
            if folder is not None:
                with suppress(OSError):
                    shutil.rmtree(folder)
    return BlockwiseResult(
        labels=out,
        membrane=membrane_out,
        objects=objects,
        blocks=len(grid),
        matches=matches,
        grid=grid,
    )


def _stitch(
    grid: BlockGrid,
    per_block: list[tuple[int, np.ndarray, np.ndarray]],
    *,
    scratch: str,
    threshold: float,
    client: Any,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
    suffix: str = "",
) -> tuple[np.ndarray, np.ndarray, int]:
    """(global id -> output id table, each block's id offset, number of matched pairs).

    ``per_block``: each block's (largest local id, ids in its core, links) in block order;
    ``suffix`` names the stored arrays matched in the overlaps (labels, or supervoxels).
    """
    blocks = grid.blocks()
    offsets = id_offsets([n for n, _, _ in per_block])
    pairs = [(blocks[a], blocks[b]) for a, b in grid.neighbour_pairs()]
    matched = map_tasks(
        match_blocks,
        pairs,
        client=client,
        shared={"scratch": scratch, "threshold": threshold, "suffix": suffix},
        progress=progress,
        cancel=cancel,
        message="matching overlap",
    )
    merges = [
        found + offsets[[a.number, b.number]] for (a, b), found in zip(pairs, matched, strict=True)
    ]
    for number, (_, _, links) in enumerate(per_block):  # chained: carried ids are their sources'
        merges.append(
            np.stack([links[:, 0] + offsets[number], links[:, 2] + offsets[links[:, 1]]], 1)
        )
    present = np.concatenate(
        [core.astype(np.int64) + offsets[k] for k, (_, core, _) in enumerate(per_block)]
    )
    total = int(offsets[-1] + per_block[-1][0])
    table = final_ids(total, np.concatenate([np.zeros((0, 2), np.int64), *merges]), present)
    return table, offsets, sum(len(m) for m in merges)


def _agglomerate_blocks(
    grid: BlockGrid,
    template: BlockJob,
    shared_source: Any,
    client: Any,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> list[np.ndarray]:
    """Each block's local fragment id -> object id: the whole volume's agglomeration
    (:mod:`~.agglomeration`), as one run makes it."""
    from napari_emseg.blockwise import agglomeration
    from napari_emseg.pipeline import start_threshold

    # The rule for the map each block's outer region gets (the facade's predict_membrane).
    rule = start_threshold(template.voxel_size, grid.blocks()[0].shape, template.model)
    threshold = (template.method_options or {}).get("threshold", rule)
    fragments = map_tasks(
        agglomeration.fragment_block,
        [replace(template, block=block) for block in grid.blocks()],
        client=client,
        shared={"source": shared_source},
        progress=stage_progress(progress, 0.0, 0.8),
        cancel=cancel,
        message="membrane and fragments of block",
    )
    pairs = agglomeration.face_pairs(grid)
    faces = map_tasks(
        agglomeration.interface_faces,
        pairs,
        client=client,
        shared={"scratch": template.scratch},
        progress=stage_progress(progress, 0.8, 0.85),
        cancel=cancel,
        message="faces between blocks",
    )
    report(progress, 0, 1, "agglomerating the whole volume")
    table, offsets = agglomeration.agglomeration_table(
        fragments, list(zip(pairs, faces, strict=True)), threshold=float(threshold)
    )
    report(progress, 1, 1, "agglomerating the whole volume")
    return [_block_lut(table, offsets, f.number, f.n_ids) for f in fragments]


def _block_lut(table: np.ndarray, offsets: np.ndarray, number: int, n_ids: int) -> np.ndarray:
    """Local id -> output id of one block (0 stays 0)."""
    lut = table[offsets[number] : offsets[number] + n_ids + 1].copy()
    lut[0] = 0  # the slice starts at the previous block's last id
    return lut


def _vote(
    grid: BlockGrid,
    summaries: list[BlockSummary],
    luts: list[np.ndarray],
    stitch,
    *,
    ref_z: int,
    scratch: str,
    client: Any,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The whole-volume supervoxel vote (:mod:`~.vote`): supervoxels stitched, counts summed.

    Returns what :func:`relabel_block` needs: the winner of every supervoxel with the reference
    slice (kept as the user left it), and each block's supervoxel lut.
    """
    sv_table, sv_offsets, _ = stitch(
        [(s.n_supervoxels, s.core_supervoxels, no_links()) for s in summaries],
        progress=None,
        suffix=SUPERVOXELS,
    )
    blocks = grid.blocks()
    sv_luts = [_block_lut(sv_table, sv_offsets, s.number, s.n_supervoxels) for s in summaries]
    tallies = map_tasks(
        tally_block,
        [(block, lut, sv_lut) for block, lut, sv_lut in zip(blocks, luts, sv_luts, strict=True)],
        client=client,
        shared={"scratch": scratch},
        progress=progress,
        cancel=cancel,
        message="counting votes",
    )
    winner = voting.winners(tallies, int(sv_table.max(initial=0)))
    return {"winner": winner, "ref_z": ref_z}, sv_luts


def _default_propagation(voxel: tuple[float, ...]) -> str:
    """The propagator one run would use from a reference slice of this volume."""
    from napari_emseg.pipeline import ANISOTROPIC_Z, default_method

    method = default_method(voxel_size=voxel)  # type: ignore[arg-type]
    if method == "agglomeration":  # a slice-by-slice start asked for on isotropic voxels
        method = default_method(voxel_size=(ANISOTROPIC_Z, 1.0, 1.0))
    return method


def _block_start(start: str, voxel: tuple[float, ...] | None) -> str:
    """The start every block uses: decided once, from the voxel size, for the whole volume."""
    from napari_emseg.pipeline import STARTS
    from napari_emseg.segmentation.supervoxels import is_anisotropic

    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; choose one of: {', '.join(STARTS)}")
    if start != "auto":
        return start
    isotropic = voxel is not None and not is_anisotropic(voxel, None)  # type: ignore[arg-type]
    return "agglomeration" if isotropic else "watershed"


def _segment_blocks(
    grid: BlockGrid,
    template: BlockJob,
    ref_z: int | None,
    shared_source: Any,
    client: Any,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> list[BlockSummary]:
    """Every block's summary (in block order); chained in waves outward from ``ref_z``."""
    from napari_emseg.pipeline import options_for
    from napari_emseg.propagation import window_stride

    groups = [grid.blocks()] if ref_z is None else chaining.waves(grid, ref_z)
    ref_layer_z = groups[0][0].core[0]
    # The stride follows the card the blocks' pixel size selects, as in a run of the whole stack.
    options = options_for(template.propagation, template.voxel_size, model=template.model)
    stride = window_stride(template.propagation, {**options, **(template.method_options or {})})
    summaries: dict[int, BlockSummary] = {}
    done = 0
    for wave in groups:
        jobs = []
        for block in wave:
            job = replace(template, block=block)
            z = None if ref_z is None else chaining.chain_slice(block, ref_layer_z, ref_z, stride)
            if ref_z is not None and z is None:
                job = replace(job, ref_slice=ref_z - block.outer[0].start)
            elif z is not None:
                job = replace(job, chain_z=z, sources=tuple(chaining.sources(grid, block, z)))
            jobs.append(job)
        part = (done / len(grid) * 0.85, (done + len(wave)) / len(grid) * 0.85)
        for summary in map_tasks(
            segment_block,
            jobs,
            client=client,
            shared={"source": shared_source},
            progress=stage_progress(progress, *part),
            cancel=cancel,
            message="segmenting block",
        ):
            summaries[summary.number] = summary
        done += len(wave)
    return [summaries[k] for k in range(len(grid))]


def _open(source: Any, client: Any) -> tuple[Any, Any, tuple[float, ...], str]:
    """(array to read here, what tasks get as ``source``, scale, unit) of a source."""
    if isinstance(source, (str, os.PathLike)):
        from napari_emseg.io import open_volume

        volume = open_volume(source, as_labels=False)
        # Workers open the file themselves, maybe with another working directory.
        shared = os.path.abspath(os.fspath(source)) if client is not None else volume.data
        return volume.data, shared, volume.scale, volume.unit
    array = source
    shared: Any = array
    if client is not None and isinstance(array, np.ndarray):
        shared = client.scatter(np.asarray(array), broadcast=True)
    return array, shared, (1.0, 1.0, 1.0), "pixel"


def _chunks(block_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Output chunks: per axis the largest divisor of the block size within the chunk limit.

    Examples
    --------
    >>> _chunks((32, 512, 500))
    (8, 256, 250)
    """
    z, y, x = (
        max(d for d in range(1, min(b, limit) + 1) if b % d == 0)
        for b, limit in zip(block_shape, _CHUNK_LIMIT, strict=True)
    )
    return z, y, x


def _label_dtype(objects: int) -> type[np.unsignedinteger]:
    if objects <= np.iinfo(np.uint16).max:
        return np.uint16
    return np.uint32 if objects <= np.iinfo(np.uint32).max else np.uint64
