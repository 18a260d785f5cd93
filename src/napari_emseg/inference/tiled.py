"""Sliding-window inference of a 2D membrane network over a (Z, Y, X) stack.

Tiles from all slices are batched together, predicted with the network (channels-last; bf16
autocast on GPUs and on CPUs with native bf16) and blended with raised-cosine weights so that
there are no seams. On a GPU the tiles are cut and blended on the device and slices travel
through pinned memory on a side stream, so copies overlap the network (docs/performance.md
measures both paths).
"""

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_emseg.inference.devices import autocast_dtype
from napari_emseg.inference.tiling import TileGrid


def pad_to(slice_2d: np.ndarray, height: int, width: int, halo: int) -> np.ndarray:
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
    precision: str = "auto",
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
        Normalised intensities (see :func:`~.normalization.normalize_intensity`).
    tile, overlap : int
        Largest tile edge and the overlap between neighbouring tiles, in pixels.
    precision : {"auto", "float32"}
        ``auto``: bfloat16 where the device computes it natively
        (:func:`~napari_emseg.inference.devices.autocast_dtype`), else float32.

    Examples
    --------
    >>> from napari_emseg.models.fusionnet import FusionNet
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
    net = net.to(device=device, memory_format=torch.channels_last).eval()
    dtype = autocast_dtype(device) if precision == "auto" else None
    if use_cuda:
        out = predict_on_gpu(
            net,
            image,
            grid=grid,
            weights=weights,
            halo=halo,
            padded=(padded_h, padded_w),
            device=device,
            batch_size=batch_size,
            dtype=dtype,
            progress=progress,
            cancel=cancel,
        )
        return out[:, halo : halo + height, halo : halo + width]

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
                padded_cache[z] = pad_to(image[z], padded_h - 2 * halo, padded_w - 2 * halo, halo)
            tiles.append(padded_cache[z][y : y + grid.tile_y, x : x + grid.tile_x])
        inputs = torch.from_numpy(np.stack(tiles)[:, None]).to(device)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cpu", dtype=dtype or torch.float32, enabled=bool(dtype)):
            probs = torch.sigmoid(net(inputs).float())[:, 0].cpu().numpy()
        for (z, y, x), prob in zip(batch, probs, strict=True):
            out[z, y : y + grid.tile_y, x : x + grid.tile_x] += prob * weights
            norm[z, y : y + grid.tile_y, x : x + grid.tile_x] += weights
        done += len(batch)
        report(progress, done, len(jobs), "predicting membranes")
    out /= np.maximum(norm, 1e-6)
    return out[:, halo : halo + height, halo : halo + width]


def predict_on_gpu(
    net: nn.Module,
    image: np.ndarray,
    *,
    grid: TileGrid,
    weights: np.ndarray,
    halo: int,
    padded: tuple[int, int],
    device: torch.device,
    batch_size: int,
    dtype: torch.dtype | None = torch.bfloat16,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> np.ndarray:
    """The CUDA path of :func:`predict_tiled`: returns the padded, blended stack.

    Slices go up in chunks of about ``batch_size`` tiles. While the GPU works on chunk ``k``, the
    CPU pads chunk ``k + 1`` and a side stream copies chunk ``k - 1``'s result down into pinned
    memory; the blend happens on the device, so only finished slices cross the bus.
    ``dtype`` is the autocast type (None: plain float32).
    """
    positions = grid.positions()
    depth = image.shape[0]
    chunk = max(1, batch_size // len(positions))
    ty, tx = grid.tile_y, grid.tile_x
    window = torch.from_numpy(weights).to(device)
    norm = torch.zeros(padded, device=device)
    for y, x in positions:
        norm[y : y + ty, x : x + tx] += window
    norm = norm.clamp_min_(1e-6)
    out = np.zeros((depth, *padded), np.float32)
    copy_stream = torch.cuda.Stream(device)
    pending: list[tuple[int, torch.Tensor, torch.cuda.Event]] = []

    def collect(keep: int) -> None:
        while len(pending) > keep:
            start, host, done = pending.pop(0)
            done.synchronize()
            out[start : start + len(host)] = host.numpy()

    for start in range(0, depth, chunk):
        check_cancel(cancel)
        stop = min(depth, start + chunk)
        host_in = torch.from_numpy(
            np.stack(
                [
                    pad_to(image[z], padded[0] - 2 * halo, padded[1] - 2 * halo, halo)
                    for z in range(start, stop)
                ]
            )
        ).pin_memory()
        slices = host_in.to(device, non_blocking=True)
        tiles = torch.stack([s[y : y + ty, x : x + tx] for s in slices for y, x in positions])
        tiles = tiles[:, None].contiguous(memory_format=torch.channels_last)
        probs = []
        for first in range(0, len(tiles), batch_size):
            with torch.autocast(device_type="cuda", dtype=dtype, enabled=dtype is not None):
                probs.append(torch.sigmoid(net(tiles[first : first + batch_size]).float())[:, 0])
        probs = torch.cat(probs) * window
        blended = torch.zeros((stop - start, *padded), device=device)
        k = 0
        for i in range(stop - start):
            for y, x in positions:
                blended[i, y : y + ty, x : x + tx] += probs[k]
                k += 1
        blended /= norm
        ready = torch.cuda.Event()
        ready.record()
        host_out = torch.empty(blended.shape, dtype=torch.float32, pin_memory=True)
        with torch.cuda.stream(copy_stream):
            copy_stream.wait_event(ready)
            host_out.copy_(blended, non_blocking=True)
            blended.record_stream(copy_stream)
            done = torch.cuda.Event()
            done.record(copy_stream)
        pending.append((start, host_out, done))
        collect(keep=1)
        report(progress, stop * len(positions), depth * len(positions), "predicting membranes")
    collect(keep=0)
    return out
