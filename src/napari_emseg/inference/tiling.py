"""Tile layout and blending weights for 2D sliding-window inference (numpy only)."""

from dataclasses import dataclass

import numpy as np


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets that cover ``[0, length)`` with tiles overlapping by at least ``overlap``.

    The last tile is aligned to the end, so every pixel is covered and no tile leaves the image.

    Examples
    --------
    >>> tile_starts(10, 4, 1)
    [0, 3, 6]
    >>> tile_starts(3, 4, 1)
    [0]
    """
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """1D weights: a raised-cosine ramp over ``overlap`` pixels at each end, 1 in the middle.

    Overlapping tiles are averaged with these weights, so tile borders (where a padded network
    sees the least context) count least and there is no visible seam. Weights never reach 0,
    so a pixel covered by a single tile keeps that tile's value.
    """
    weights = np.ones(tile, np.float32)
    ramp = min(overlap, tile // 2)
    if ramp > 0:
        x = (np.arange(ramp, dtype=np.float32) + 0.5) / ramp
        rise = 0.5 - 0.5 * np.cos(np.pi * x)
        weights[:ramp] = rise
        weights[tile - ramp :] = rise[::-1]
    return weights


def _fitted_tile(length: int, tile: int, overlap: int, divisor: int) -> int:
    """Edge of the fewest tiles of at most ``tile`` that cover ``length`` with ``overlap``."""
    if length <= tile:
        return -(-length // divisor) * divisor
    count = -(-(length - overlap) // max(tile - overlap, 1))
    edge = -(-(length + (count - 1) * overlap) // count)
    return min(tile, -(-edge // divisor) * divisor)


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one (padded) slice lie."""

    tile_y: int
    tile_x: int
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]

    @classmethod
    def plan(cls, height: int, width: int, *, tile: int, overlap: int, divisor: int) -> "TileGrid":
        """The fewest tiles of at most ``tile`` pixels (multiples of ``divisor``) that cover
        the slice, each as small as that count allows, so little is computed beyond the slice.

        Examples
        --------
        >>> grid = TileGrid.plan(282, 282, tile=512, overlap=32, divisor=16)
        >>> grid.tile_y, grid.starts_y
        (288, (0,))
        >>> grid = TileGrid.plan(544, 544, tile=512, overlap=32, divisor=16)
        >>> grid.tile_y, grid.starts_y
        (288, (0, 256))
        """
        tile = max(divisor, tile // divisor * divisor)
        tile_y, tile_x = (_fitted_tile(n, tile, overlap, divisor) for n in (height, width))
        return cls(
            tile_y,
            tile_x,
            tuple(tile_starts(height, tile_y, overlap)),
            tuple(tile_starts(width, tile_x, overlap)),
        )

    def positions(self) -> list[tuple[int, int]]:
        return [(y, x) for y in self.starts_y for x in self.starts_x]

    def weights(self, overlap: int) -> np.ndarray:
        return np.outer(blend_window(self.tile_y, overlap), blend_window(self.tile_x, overlap))
