"""What one worker does for a blockwise run: segment a block, match an overlap, count votes,
write a block's final ids (module-level functions with small picklable arguments, so that
:func:`~.executor.map_tasks` runs them here or as Dask tasks).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from napari_emseg.blockwise import chain as chaining
from napari_emseg.blockwise import vote as voting
from napari_emseg.blockwise.grid import Block, intersection, local
from napari_emseg.blockwise.stitching import match_overlap
from napari_emseg.io.lazy import read_region
from napari_emseg.io.ome_zarr import new_array, open_group, open_level
from napari_emseg.io.volume import InputError, short_error


@dataclass(frozen=True)
class BlockJob:
    """What a worker needs to segment one block (small and picklable)."""

    block: Block
    scratch: str
    membrane: str | None
    model: str | None
    device: str
    propagation: str
    value_range: tuple[float, float] | None
    method_options: dict[str, Any] | None = None
    voxel_size: tuple[float, float, float] | None = None
    start: str = "auto"
    ref_slice: int | None = None  # in the outer region; None: the block's middle slice
    chain_z: int | None = None  # volume slice to start from, labelled by ``sources``' cores
    sources: tuple[Block, ...] = ()
    vote_later: bool = False  # keep the propagated labels and the supervoxels (:mod:`~.vote`)


def no_links() -> np.ndarray:
    return np.zeros((0, 3), np.int64)


@dataclass(frozen=True)
class BlockSummary:
    """What a block task returns: its number, its largest local id, the ids in its core and
    its links ``(local id, source block, source local id)`` to the blocks it started from;
    with a vote to come, the same for its supervoxels (which have no links)."""

    number: int
    n_ids: int
    core_ids: np.ndarray
    links: np.ndarray = field(default_factory=no_links)
    n_supervoxels: int = 0
    core_supervoxels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def segment_block(job: BlockJob, *, source: Any) -> BlockSummary:
    """Segment one block with its halo; write its labels to scratch, its membrane core out.

    A dask task: ``source`` is the volume (an array, or an input spec the worker opens).
    """
    region = job.block.outer if job.chain_z is None else chaining.reach(job.block, job.chain_z)
    image = read_outer(job, source, region)
    membrane, labels, supervoxels, links = _segment_outer(job, image, region[0].start)
    core = job.block.core_in_outer
    if job.membrane is not None:
        open_level(job.membrane)[job.block.core] = membrane[core]
    _store(job, job.block.name, labels)
    summary = BlockSummary(job.block.number, int(labels.max(initial=0)), _ids(labels[core]), links)
    if supervoxels is None:
        return summary
    _store(job, job.block.name + SUPERVOXELS, supervoxels)
    return replace(
        summary,
        n_supervoxels=int(supervoxels.max(initial=0)),
        core_supervoxels=_ids(supervoxels[core]),
    )


def read_outer(job: BlockJob, source: Any, region=None) -> np.ndarray:
    """The block's outer region (or ``region``) of the input, or one line on damaged data."""
    try:
        return read_region(_worker_source(source), job.block.outer if region is None else region)
    except (InputError, MemoryError):
        raise
    except Exception as exc:  # zarr, h5py and codecs raise many types on damaged data
        raise InputError(
            f"cannot read block {job.block.name} of the input ({short_error(exc)}): the file "
            "may be truncated or corrupt; copy or export it again"
        ) from exc


SUPERVOXELS = "-supervoxels"  # scratch array of a block's supervoxels, beside its labels


def _ids(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    return ids[ids != 0]


def _store(job: BlockJob, name: str, array: np.ndarray) -> None:
    top = int(array.max(initial=0))
    dtype = np.uint32 if top <= np.iinfo(np.uint32).max else np.uint64
    stored = new_array(
        open_group(job.scratch), name, shape=array.shape, dtype=dtype, chunks=array.shape
    )
    stored[...] = array.astype(dtype, copy=False)


def _segment_outer(
    job: BlockJob, image: np.ndarray, z0: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """(membrane, labels, supervoxels, links) of a block's outer region: segmented from its
    own reference slice, or propagated from the slice its sources labelled (a chained block).

    ``image`` is the block's outer region, or for a chained block the region from volume slice
    ``z0`` that also holds its start slice (:func:`~.chain.reach`); the results are cropped to
    the outer region. A chained block propagates only away from the reference, as one run does
    there. With ``job.vote_later`` the labels are the propagation's (not voted: the next wave
    carries them on, as one run carries its propagation on before its vote) and the
    supervoxels are returned for the whole-volume vote (:mod:`~.vote`); else None.
    """
    from napari_emseg import pipeline
    from napari_emseg.propagation import propagate
    from napari_emseg.segmentation.supervoxels import membrane_supervoxels

    options = dict(job.method_options or {})
    if job.vote_later:
        options["consistency"] = "none"  # voted once over the whole volume
    links = no_links()
    network = {
        "model": job.model,
        "device": job.device,
        "voxel_size": job.voxel_size,
        "value_range": job.value_range,
    }
    if job.chain_z is None:
        result = pipeline.segment(
            image,
            ref_slice=job.ref_slice,
            propagation=job.propagation,
            start=job.start,
            method_options=options or None,
            **network,
        )
        membrane, labels = result.membrane, result.labels
    else:
        membrane = pipeline.predict_membrane(image, **network)
        group = open_group(job.scratch, mode="r")

        def read_labels(block: Block, region) -> np.ndarray:
            return np.asarray(group[block.name][local(region, block.outer)])

        reference, links = chaining.reference_slice(
            job.block, job.chain_z, list(job.sources), read_labels
        )
        ref = job.chain_z - z0
        labels = np.zeros(image.shape, np.uint32)
        labels[ref] = reference
        upward = job.chain_z < job.block.core[0].start
        labels = propagate(
            image,
            labels,
            ref,
            z_range=(ref, image.shape[0] - 1) if upward else (0, ref),
            membrane=membrane,
            method=job.propagation,
            device=job.device,
            voxel_size=job.voxel_size,
            **{
                **pipeline.options_for(
                    job.propagation, job.voxel_size, shape=image.shape, model=job.model
                ),
                **options,
            },
        )
    supervoxels = None
    if job.vote_later:
        supervoxels = membrane_supervoxels(membrane, voxel_size=job.voxel_size)
    outer = slice(job.block.outer[0].start - z0, job.block.outer[0].stop - z0)
    if supervoxels is not None:
        supervoxels = supervoxels[outer]
    return membrane[outer], labels[outer], supervoxels, links


def match_blocks(
    pair: tuple[Block, Block], *, scratch: str, threshold: float, suffix: str = ""
) -> np.ndarray:
    """Local id pairs ``(id in a, id in b)`` matched in the overlap of two blocks (a dask task)."""
    a, b = pair
    region = intersection(a.outer, b.outer)
    group = open_group(scratch, mode="r")
    labels_a = group[a.name + suffix][local(region, a.outer)]
    labels_b = group[b.name + suffix][local(region, b.outer)]
    return match_overlap(np.asarray(labels_a), np.asarray(labels_b), threshold=threshold)


def tally_block(job: tuple[Block, np.ndarray, np.ndarray], *, scratch: str) -> np.ndarray:
    """The (supervoxel, object, voxels) counts of one block's core in output ids (a dask task)."""
    block, lut, sv_lut = job
    group = open_group(scratch, mode="r")
    labels = lut[np.asarray(group[block.name][block.core_in_outer])]
    supervoxels = sv_lut[np.asarray(group[block.name + SUPERVOXELS][block.core_in_outer])]
    return voting.tally(labels, supervoxels)


def relabel_block(
    job: tuple[Block, np.ndarray, np.ndarray | None],
    *,
    scratch: str,
    labels: str,
    votes: dict | None = None,
) -> None:
    """Write one block's core with final ids: ``lut[local id]``, then the supervoxel vote's
    winners when ``votes`` (from :func:`_vote`) is given (a dask task)."""
    block, lut, sv_lut = job
    group = open_group(scratch, mode="r")
    ids = lut[np.asarray(group[block.name][block.core_in_outer])]
    if votes is not None and sv_lut is not None:
        supervoxels = sv_lut[np.asarray(group[block.name + SUPERVOXELS][block.core_in_outer])]
        z = np.arange(block.core[0].start, block.core[0].stop)
        fixed = np.broadcast_to((z == votes["ref_z"])[:, None, None], ids.shape)
        ids = voting.apply_winners(ids, supervoxels, votes["winner"], fixed)
    target = open_level(labels)
    target[block.core] = ids.astype(target.dtype, copy=False)


@functools.lru_cache(maxsize=2)
def _open_spec(spec: str) -> Any:
    """The volume behind an input spec, opened once per worker process."""
    from napari_emseg.io import open_volume

    return open_volume(spec, as_labels=False).data


def _worker_source(source: Any) -> Any:
    return _open_spec(source) if isinstance(source, str) else source
