"""The classical pipeline's numbers (docs/baselines.md): a 2D watershed of a membrane map per
slice, and the ``watershed`` propagator from the ground-truth reference."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from napari_emseg.evaluation.data import Block
from napari_emseg.evaluation.machine import timed
from napari_emseg.evaluation.report import table_row
from napari_emseg.metrics import adapted_rand_error


def slice_watershed(
    membrane: np.ndarray, gt: np.ndarray, slices: Iterable[int]
) -> tuple[list[float], list[int]]:
    """Adapted Rand error and object count of ``watershed_slice`` of each of ``slices``.

    Examples
    --------
    >>> membrane = np.zeros((1, 8, 8), np.float32); membrane[0, :, 4] = 1
    >>> gt = np.ones((1, 8, 8), np.uint32); gt[0, :, 4:] = 2
    >>> errors, objects = slice_watershed(membrane, gt, [0])
    >>> objects, errors[0] < 0.5
    ([2], True)
    """
    from napari_emseg.segmentation.watershed import watershed_slice

    errors, objects = [], []
    for z in slices:
        labels = watershed_slice(membrane[z])
        errors.append(float(adapted_rand_error(labels, gt[z])))
        objects.append(int(labels.max()))
    return errors, objects


def are_row(name: str, errors: list[float], objects: list[int]) -> str:
    """Mean, min and max ARE over slices and the median object count, as a markdown row.

    Examples
    --------
    >>> are_row("ridge", [0.2, 0.4], [80, 90])
    '| ridge | 0.300 | 0.200 | 0.400 | 85 |'
    """
    return (
        f"| {name} | {np.mean(errors):.3f} | {np.min(errors):.3f} | {np.max(errors):.3f} | "
        f"{int(np.median(objects))} |"
    )


def propagation_row(name: str, block: Block, membrane: np.ndarray, membrane_name: str) -> str:
    """``watershed`` from the ground-truth reference (dense, as a user's would be): ARE, VOI
    split / merge and seconds, as a markdown row."""
    from napari_emseg.evaluation.propagation import scored_row
    from napari_emseg.propagation import propagate

    out, seconds = timed(
        propagate, block.image, block.reference(), block.ref, membrane=membrane, method="watershed"
    )
    r = scored_row("watershed", "ground truth", out, block.gt, seconds)
    cells = [name, membrane_name, f"{r.are:.3f}", f"{r.split:.3f}", f"{r.merge:.3f}"]
    return table_row([*cells, f"{seconds:.1f}"])
