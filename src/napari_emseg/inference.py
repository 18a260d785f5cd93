"""Sliding-window inference of a 2D membrane network over a (Z, Y, X) stack.

Tiles from all slices are batched together, predicted with the network (autocast on GPUs,
channels_last on the CPU) and blended with raised-cosine weights so that there are no seams.
"""

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_emseg.tiling import TileGrid


def _pad_to(slice_2d: np.ndarray, height: int, width: int, halo: int) -> np.ndarray:
    """Mirror-pad so the network sees context beyond the border and tiles fit."""
    pad_y = max(0, height - slice_2d.shape[0])
    pad_x = max(0, width - slice_2d.shape[1])
    widths = ((halo, halo + pad_y), (halo, halo + pad_x))
    mode = "reflect" if min(slice_2d.shape) > max(halo + pad_y, halo + pad_x) else "symmetric"
    return np.pad(slice_2d, widths, mode=mode)


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.inference_mode()
def predict_tiled(
    net: nn.Module,
    image: np.ndarray,
    *,
    device: torch.device,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int = 4,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> np.ndarray:
    """Membrane probabilities of a normalised float stack, in [0, 1] with 1 = membrane.

    Parameters
    ----------
    net : nn.Module
        Returns one logit map per input tile; ``net.size_divisor`` (if present) gives the size
        every tile must be a multiple of.
    image : ndarray, shape (Z, Y, X)
        Normalised intensities (see :func:`napari_emseg.normalization.normalize_intensity`).
    tile, overlap : int
        Tile edge and the overlap between neighbouring tiles, in pixels.

    Examples
    --------
    >>> from napari_emseg.models import FusionNet
    >>> net = FusionNet(width=0.0625, depth=2).eval()
    >>> predict_tiled(net, np.zeros((2, 40, 50), np.float32), device=torch.device("cpu")).shape
    (2, 40, 50)
    """
    if image.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) stack, got shape {image.shape}")
    divisor = int(getattr(net, "size_divisor", 1))
    depth, height, width = image.shape
    halo = overlap // 2
    grid = TileGrid.plan(
        height + 2 * halo, width + 2 * halo, tile=tile, overlap=overlap, divisor=divisor
    )
    padded_h = max(height + 2 * halo, grid.tile_y)
    padded_w = max(width + 2 * halo, grid.tile_x)
    weights = grid.weights(overlap)
    use_cuda = device.type == "cuda"
    memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    net = net.to(device=device, memory_format=memory_format).eval()

    jobs = [(z, y, x) for z in range(depth) for (y, x) in grid.positions()]
    out = np.zeros((depth, padded_h, padded_w), np.float32)
    norm = np.zeros((depth, padded_h, padded_w), np.float32)
    padded_cache: dict[int, np.ndarray] = {}
    done = 0
    for batch in _batches(jobs, batch_size):
        check_cancel(cancel)
        tiles = []
        for z, y, x in batch:
            if z not in padded_cache:
                padded_cache.clear()  # slices arrive in order: keep only the current one
                padded_cache[z] = _pad_to(image[z], padded_h - 2 * halo, padded_w - 2 * halo, halo)
            tiles.append(padded_cache[z][y : y + grid.tile_y, x : x + grid.tile_x])
        inputs = torch.from_numpy(np.stack(tiles)[:, None]).to(device, non_blocking=use_cuda)
        inputs = inputs.contiguous(memory_format=memory_format)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_cuda):
            probs = torch.sigmoid(net(inputs).float())[:, 0].cpu().numpy()
        for (z, y, x), prob in zip(batch, probs, strict=True):
            out[z, y : y + grid.tile_y, x : x + grid.tile_x] += prob * weights
            norm[z, y : y + grid.tile_y, x : x + grid.tile_x] += weights
        done += len(batch)
        report(progress, done, len(jobs), "predicting membranes")
    out /= np.maximum(norm, 1e-6)
    return out[:, halo : halo + height, halo : halo + width]
