"""Split a (Z, Y, X) volume into blocks: a core each block owns, and a halo of context around it.

Cores tile the volume on a regular grid (the last block along an axis may be shorter), so cores
start at multiples of the block shape and an output whose chunks divide the block shape gets
exactly one writer per chunk. A block is processed on its *outer* region, the core grown by the
halo on every side and clipped to the volume; neighbouring outer regions overlap by twice the halo,
which is where :mod:`napari_emseg.blockwise.stitching` matches their ids.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

Region = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Block:
    """One block of a :class:`BlockGrid`.

    Attributes
    ----------
    number : int
        Position in raster order (z slowest), 0-based.
    index : (int, int, int)
        Position on the grid.
    core : tuple of slice
        The voxels this block writes, in volume coordinates.
    outer : tuple of slice
        The core grown by the halo and clipped to the volume: the voxels it reads.
    """

    number: int
    index: tuple[int, int, int]
    core: Region
    outer: Region

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the outer region (what is segmented)."""
        return _lengths(self.outer)

    @property
    def core_in_outer(self) -> Region:
        """The core in coordinates of the outer region."""
        return local(self.core, self.outer)

    @property
    def name(self) -> str:
        """``"z-y-x"`` grid position, e.g. for file names."""
        return "-".join(map(str, self.index))


@dataclass(frozen=True)
class BlockGrid:
    """Blocks of at most ``block_shape`` voxels with ``halo`` voxels of context on every side.

    Parameters
    ----------
    shape : (int, int, int)
        Volume shape.
    block_shape : (int, int, int)
        Core size; clipped to the volume.
    halo : (int, int, int)
        Context added on each side; at most half the (clipped) block size, so that outer regions
        overlap only between neighbouring blocks. Set to 0 along an axis that one block spans.

    Examples
    --------
    >>> grid = BlockGrid((10, 64, 64), (5, 32, 64), (2, 8, 8))
    >>> len(grid), grid.grid_shape
    (4, (2, 2, 1))
    >>> b = grid.blocks()[1]
    >>> b.index, b.core, b.outer
    ((0, 1, 0), (slice(0, 5, None), slice(32, 64, None), slice(0, 64, None)), \
(slice(0, 7, None), slice(24, 64, None), slice(0, 64, None)))
    >>> grid.neighbour_pairs()
    [(0, 1), (0, 2), (1, 3), (2, 3)]
    """

    shape: tuple[int, int, int]
    block_shape: tuple[int, int, int]
    halo: tuple[int, int, int]

    def __post_init__(self) -> None:
        shape = _triple(self.shape, "volume shape")
        block = _triple(self.block_shape, "block shape")
        halo = _triple(self.halo, "halo", minimum=0)
        block = tuple(min(b, n) for b, n in zip(block, shape, strict=True))
        # One block along an axis has no neighbour there: no halo needed.
        halo = tuple(0 if b == n else h for b, h, n in zip(block, halo, shape, strict=True))
        for axis, (b, h) in enumerate(zip(block, halo, strict=True)):
            if 2 * h > b:
                raise ValueError(
                    f"halo {halo} is more than half the block shape {block} on axis {axis}: "
                    "use a bigger block or a smaller halo"
                )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "block_shape", block)
        object.__setattr__(self, "halo", halo)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """Number of blocks along z, y and x."""
        z, y, x = (-(-n // b) for n, b in zip(self.shape, self.block_shape, strict=True))
        return z, y, x

    def __len__(self) -> int:
        z, y, x = self.grid_shape
        return z * y * x

    def block(self, index: tuple[int, int, int]) -> Block:
        """The block at grid position ``index``."""
        gz, gy, gx = self.grid_shape
        number = (index[0] * gy + index[1]) * gx + index[2]
        core = []
        outer = []
        for i, n, b, h in zip(index, self.shape, self.block_shape, self.halo, strict=True):
            start, stop = i * b, min((i + 1) * b, n)
            core.append(slice(start, stop))
            outer.append(slice(max(0, start - h), min(n, stop + h)))
        return Block(number, tuple(index), _region(core), _region(outer))  # type: ignore[arg-type]

    def blocks(self) -> list[Block]:
        """All blocks in raster order (``blocks()[k].number == k``)."""
        return [self.block(i) for i in itertools.product(*map(range, self.grid_shape))]

    def neighbour_pairs(self) -> list[tuple[int, int]]:
        """``(a, b)`` block numbers, a < b, of every two blocks that share a face.

        Their outer regions overlap by twice the halo across that face (and by the halo into the
        blocks beside it); blocks that meet only at an edge or a corner are linked through the
        face neighbours they both overlap. With a zero halo across a face there is no overlap
        and no pair.
        """
        pairs = []
        for block in self.blocks():
            for axis in range(3):
                if not self.halo[axis] or block.index[axis] + 1 >= self.grid_shape[axis]:
                    continue
                other = list(block.index)
                other[axis] += 1
                pairs.append((block.number, self.block(tuple(other)).number))  # type: ignore[arg-type]
        return sorted(pairs)


def intersection(a: Region, b: Region) -> Region:
    """The overlap of two regions (may be empty).

    Examples
    --------
    >>> intersection((slice(0, 5),) * 3, (slice(3, 9),) * 3)[0]
    slice(3, 5, None)
    """
    pairs = zip(a, b, strict=True)
    return _region([slice(max(p.start, q.start), min(p.stop, q.stop)) for p, q in pairs])


def local(region: Region, frame: Region) -> Region:
    """``region`` in the coordinates of ``frame`` (which contains it).

    Examples
    --------
    >>> local((slice(3, 5),) * 3, (slice(2, 9),) * 3)[0]
    slice(1, 3, None)
    """
    pairs = zip(region, frame, strict=True)
    return _region([slice(r.start - f.start, r.stop - f.start) for r, f in pairs])


def _region(slices: list[slice]) -> Region:
    z, y, x = slices
    return z, y, x


def _lengths(region: Region) -> tuple[int, int, int]:
    z, y, x = (max(0, s.stop - s.start) for s in region)
    return z, y, x


def _triple(values: object, what: str, *, minimum: int = 1) -> tuple[int, int, int]:
    try:
        items = [int(v) for v in values]  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} {values!r} must be three integers (z, y, x)") from exc
    if len(items) != 3 or min(items) < minimum:
        raise ValueError(f"{what} {tuple(items)} must be three integers >= {minimum} (z, y, x)")
    return items[0], items[1], items[2]
