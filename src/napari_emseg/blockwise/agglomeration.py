"""The agglomeration start block by block: one merge tree over the whole volume, as one run.

One run agglomerates the fragments of the whole membrane map
(:func:`napari_emseg.propagation.agglomeration.agglomerate`). Agglomerating each block on its
own and stitching the results gives other objects: each block merges with its own context and
its own membrane level. Here instead:

1. each block predicts its map with its halo, smooths it as one run does and cuts it into
   fragments (watershed basins); it keeps its core's fragments, the statistics of the faces
   between them and a sample of its map (:func:`fragment_block`, a task);
2. the faces between neighbouring cores (one voxel layer on each side) join the blocks'
   fragments (:func:`interface_faces`, a task per pair);
3. one merge tree over every fragment of the volume, cut at the start rule's threshold
   relative to the whole map's membrane level, gives each fragment its object.

A basin cut by a block face becomes two fragments whose shared face lies inside the cell (no
membrane), so they merge first: objects differ from one run's only where a face of a block
meets a membrane (docs/large-volumes.md measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_emseg.blockwise.grid import Block, BlockGrid
from napari_emseg.blockwise.stitching import id_offsets
from napari_emseg.blockwise.tasks import BlockJob, read_outer
from napari_emseg.io.ome_zarr import new_array, open_group, open_level

MEMBRANE = "-membrane"  # scratch array of a block's core map, beside its fragments
LEVEL_SAMPLES = 200_000  # per block, for the whole map's 99th percentile


@dataclass(frozen=True)
class Fragments:
    """What :func:`fragment_block` returns: the block, its fragment count, the faces between
    its fragments (local ids a < b, sum and count of face values) and a sample of its map."""

    number: int
    n_ids: int
    first: np.ndarray
    second: np.ndarray
    sums: np.ndarray
    counts: np.ndarray
    sample: np.ndarray


def fragment_block(job: BlockJob, *, source) -> Fragments:
    """Membrane map and fragments of one block's core, stored in scratch (a dask task)."""
    from napari_emseg import pipeline
    from napari_emseg.propagation.agglomeration import DEFAULT_SIGMA_NM
    from napari_emseg.segmentation.supervoxels import _fragments, _voxel_size, face_statistics

    image = read_outer(job, source)
    membrane = pipeline.predict_membrane(
        image,
        model=job.model,
        device=job.device,
        voxel_size=job.voxel_size,
        value_range=job.value_range,
    )
    size = _voxel_size(job.voxel_size)
    sigmas = DEFAULT_SIGMA_NM / size
    relief = ndi.gaussian_filter(membrane, sigmas)
    core = job.block.core_in_outer
    fragments = _fragments(relief, per_slice=False)[core]
    ids, fragments = np.unique(fragments, return_inverse=True)
    fragments = (fragments.reshape(membrane[core].shape) + (ids[0] != 0)).astype(np.uint32)
    core_map = np.ascontiguousarray(membrane[core], np.float32)
    if job.membrane is not None:
        open_level(job.membrane)[job.block.core] = core_map
    group = open_group(job.scratch)
    stored = np.zeros(membrane.shape, np.uint32)
    stored[core] = fragments
    new_array(group, job.block.name, shape=stored.shape, dtype=np.uint32, chunks=stored.shape)[
        ...
    ] = stored
    new_array(
        group, job.block.name + MEMBRANE, shape=core_map.shape, dtype=np.float32,
        chunks=core_map.shape,
    )[...] = core_map  # fmt: skip
    first, second, sums, counts = face_statistics(fragments.astype(np.int64), core_map, (0, 1, 2))
    step = max(core_map.size // LEVEL_SAMPLES, 1)
    return Fragments(
        job.block.number, int(fragments.max(initial=0)), first, second, sums, counts,
        core_map.ravel()[::step].copy(),
    )  # fmt: skip


def face_pairs(grid: BlockGrid) -> list[tuple[Block, Block, int]]:
    """``(a, b, axis)`` of every two blocks whose cores touch across a face (b after a)."""
    pairs = []
    for block in grid.blocks():
        for axis in range(3):
            if block.index[axis] + 1 < grid.grid_shape[axis]:
                index = list(block.index)
                index[axis] += 1
                pairs.append((block, grid.block(tuple(index)), axis))  # type: ignore[arg-type]
    return pairs


def interface_faces(pair: tuple[Block, Block, int], *, scratch: str) -> tuple[np.ndarray, ...]:
    """Faces between two neighbouring cores: (a's local id, b's local id, face value) of every
    touching voxel pair across their shared face (a dask task)."""
    a, b, axis = pair
    group = open_group(scratch, mode="r")

    def layer(block: Block, name: str, last: bool) -> np.ndarray:
        array = np.asarray(group[name])
        if name == block.name:
            array = array[block.core_in_outer]
        index = [slice(None)] * 3
        index[axis] = slice(-1, None) if last else slice(0, 1)
        return array[tuple(index)].ravel()

    ids_a, ids_b = layer(a, a.name, True), layer(b, b.name, False)
    values = np.maximum(layer(a, a.name + MEMBRANE, True), layer(b, b.name + MEMBRANE, False))
    keep = (ids_a > 0) & (ids_b > 0)
    return ids_a[keep].astype(np.int64), ids_b[keep].astype(np.int64), values[keep]


def agglomeration_table(
    blocks: list[Fragments],
    interfaces: list[tuple[tuple[Block, Block, int], tuple[np.ndarray, ...]]],
    *,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(global fragment id -> object id 1..N, each block's id offset): the merge tree of the
    whole volume cut at ``threshold`` times its membrane level, as one run cuts it."""
    from napari_emseg.segmentation.agglomeration import merge_tree

    offsets = id_offsets([f.n_ids for f in blocks])
    total = int(sum(f.n_ids for f in blocks))
    first = [f.first + offsets[f.number] for f in blocks]
    second = [f.second + offsets[f.number] for f in blocks]
    sums = [f.sums for f in blocks]
    counts = [f.counts for f in blocks]
    for (a, b, _axis), (ids_a, ids_b, values) in interfaces:
        ga, gb = ids_a + offsets[a.number], ids_b + offsets[b.number]
        first.append(np.minimum(ga, gb))
        second.append(np.maximum(ga, gb))
        sums.append(values.astype(np.float64))
        counts.append(np.ones(len(values), np.int64))
    base = total + 1
    keys = np.concatenate(first) * base + np.concatenate(second)
    pairs, inverse = np.unique(keys, return_inverse=True)
    pooled_sums = np.bincount(inverse, weights=np.concatenate(sums))
    pooled_counts = np.bincount(inverse, weights=np.concatenate(counts))
    sample = np.concatenate([f.sample for f in blocks])
    level = float(min(np.percentile(sample, 99), 1.0)) if sample.size else 1.0
    # Recorded up to the level, as one run records it, then cut: merges are not monotone.
    tree = merge_tree(pairs // base, pairs % base, pooled_sums, pooled_counts, total, level)
    roots = tree.table(threshold * level)
    _, objects = np.unique(roots[1:], return_inverse=True)
    table = np.concatenate([[0], objects + 1]).astype(np.int64)
    return table, offsets
