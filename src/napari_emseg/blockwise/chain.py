"""Blocks that cut z, chained: each layer starts from the stitched last slice of the one before.

Propagating from one reference slice makes ids consistent through z; a block that started again
from its own 2D watershed would break every object at its z faces. So blocks run in *waves*
outward from the layer of blocks that holds the volume's reference slice: that layer segments as
usual (from the reference slice), then the layers above and below it, one wave at a time; a
block of a later wave takes as its reference a slice outside its core towards the reference, as
the blocks of earlier waves labelled it in their cores: the nearest slice where one whole-volume
run starts a z window (any slice for the classical propagator, every 4th from the reference for
the learned one), read beyond the block's z halo when it lies further out.

Those labels are other blocks' local ids. A block renumbers them ``1..k`` for its propagation,
and returns *links* ``(local id, source block, source local id)``; the stitching merges every
linked pair, so an object keeps one id through the whole volume as in one run. Blocks of one
wave share no data and run in parallel (on a dask cluster too).
"""

from __future__ import annotations

import numpy as np

from napari_emseg.blockwise.grid import Block, BlockGrid, Region, intersection, local


def waves(grid: BlockGrid, ref_z: int) -> list[list[Block]]:
    """Blocks grouped by z layer, in the order they must run: the reference layer, then layers
    at distance 1 above and below it, then 2, ...

    Examples
    --------
    >>> grid = BlockGrid((10, 8, 8), (3, 8, 8), (1, 0, 0))
    >>> [[b.index[0] for b in wave] for wave in waves(grid, 5)]
    [[1], [0, 2], [3]]
    """
    layers = grid.grid_shape[0]
    ref_layer = min(ref_z // grid.block_shape[0], layers - 1)
    by_layer: dict[int, list[Block]] = {}
    for block in grid.blocks():
        by_layer.setdefault(block.index[0], []).append(block)
    order = [[ref_layer]]
    for distance in range(1, layers):
        order.append([k for k in (ref_layer - distance, ref_layer + distance) if 0 <= k < layers])
    return [[b for k in wave for b in by_layer[k]] for wave in order if wave]


def chain_slice(block: Block, ref_layer_z: slice, ref_z: int, stride: int = 1) -> int | None:
    """The slice (volume z) a block of a later wave starts from, None in the reference layer.

    The nearest slice outside the block's core towards the reference that is ``ref_z`` plus a
    multiple of ``stride`` (the propagation method's z window, see
    :func:`napari_emseg.propagation.window_stride`): the block's windows then fall where one
    whole-volume run's do, and it predicts its slices from the same reference slices.

    Examples
    --------
    >>> grid = BlockGrid((40, 8, 8), (10, 8, 8), (2, 0, 0))
    >>> above = grid.block((2, 0, 0))  # core 20..29, reference 5 in the layer 0..9
    >>> chain_slice(above, slice(0, 10), 5), chain_slice(above, slice(0, 10), 5, stride=4)
    (19, 17)
    """
    core = block.core[0]
    if core == ref_layer_z:
        return None
    if core.start >= ref_layer_z.stop:
        return ref_z + (core.start - 1 - ref_z) // stride * stride
    return ref_z - (ref_z - core.stop) // stride * stride


def reach(block: Block, z: int) -> Region:
    """The region a chained block reads: its outer region grown in z to hold slice ``z``.

    Examples
    --------
    >>> grid = BlockGrid((40, 8, 8), (10, 8, 8), (2, 0, 0))
    >>> reach(grid.block((2, 0, 0)), 17)[0], reach(grid.block((2, 0, 0)), 19)[0]
    (slice(17, 32, None), slice(18, 32, None))
    """
    z_outer = block.outer[0]
    grown = slice(min(z_outer.start, z), max(z_outer.stop, z + 1))
    return (grown, *block.outer[1:])


def sources(grid: BlockGrid, block: Block, z: int) -> list[Block]:
    """Blocks whose core holds slice ``z`` and meets ``block``'s outer region in y/x."""
    layer = z // grid.block_shape[0]
    rows, cols = (
        range(outer.start // size, (outer.stop - 1) // size + 1)
        for outer, size in zip(block.outer[1:], grid.block_shape[1:], strict=True)
    )
    return [grid.block((layer, row, col)) for row in rows for col in cols]


def reference_slice(
    block: Block, z: int, source_blocks: list[Block], read_labels
) -> tuple[np.ndarray, np.ndarray]:
    """The reference labels (``1..k``) of ``block`` at slice ``z`` and their links.

    ``read_labels(source, region)`` gives a source block's local ids in a volume region. Returns
    the (Y, X) slice over ``block``'s outer y/x and a (k, 3) int64 array of
    ``(local id, source block number, source local id)``.
    """
    plane = (slice(z, z + 1), *block.outer[1:])
    keyed = np.zeros(tuple(s.stop - s.start for s in block.outer[1:]), np.int64)
    shift = np.int64(1) << np.int64(32)
    for source in source_blocks:
        region = intersection(source.core, plane)
        ids = np.asarray(read_labels(source, region), np.int64)[0]
        target = local(region, plane)[1:]
        keyed[target] = np.where(ids != 0, source.number * shift + ids, 0)
    keys, compact = np.unique(keyed, return_inverse=True)
    compact = compact.reshape(keyed.shape)
    if keys[0] != 0:  # no background: ids start at 1 all the same
        compact += 1
        keys = np.concatenate([[0], keys])
    links = np.stack([np.arange(1, keys.size), keys[1:] // shift, keys[1:] % shift], axis=1).astype(
        np.int64
    )
    return compact.astype(np.uint32), links.reshape(-1, 3)


def check_halo(grid: BlockGrid) -> None:
    """Chaining needs the slice before a block's core inside its outer region."""
    if grid.grid_shape[0] > 1 and grid.halo[0] < 1:
        raise ValueError(
            "blocks that cut z need a z halo of at least 1 to carry ids from block to block"
        )
