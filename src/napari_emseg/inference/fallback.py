"""Inference that survives running out of GPU memory: smaller batches, smaller tiles, then CPU."""

import warnings
from collections.abc import Callable

import numpy as np
import torch

MIN_TILE = 128


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA/MPS allocation failures (torch raises several types for them)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def _free_device_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def fallback_plans(device: torch.device, tile: int, batch_size: int):
    """The settings to try in order: as asked, halved batches, halved tiles, then the CPU."""
    plans = [(device, tile, batch_size)]
    batch = batch_size
    while batch > 1:
        batch //= 2
        plans.append((device, tile, batch))
    size = tile
    while size // 2 >= MIN_TILE:
        size //= 2
        plans.append((device, size, 1))
    if device.type != "cpu":
        plans.append((torch.device("cpu"), min(tile, 256), 2))
    return plans


def run_with_fallback(
    predict: Callable[[torch.device, int, int], np.ndarray],
    *,
    device: torch.device,
    tile: int,
    batch_size: int,
) -> np.ndarray:
    """Call ``predict(device, tile, batch_size)``, retrying smaller settings on out-of-memory.

    Each retry is announced with a warning (the CLI prints it, the widget shows it), so the user
    knows why a run is slower than expected.
    """
    last_error: BaseException | None = None
    for attempt, (where, size, batch) in enumerate(fallback_plans(device, tile, batch_size)):
        if attempt:
            warnings.warn(
                f"out of memory on {device.type}; retrying with tiles of {size} px, batches of "
                f"{batch} on {where.type}",
                RuntimeWarning,
                stacklevel=2,
            )
        try:
            return predict(where, size, batch)
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            last_error = err
            _free_device_memory(where)
    raise MemoryError(f"out of memory even with {MIN_TILE}-px tiles on the CPU") from last_error
