"""Time the proofreading loop's costly step: repropagating one corrected object.

``napari-emseg benchmark`` reports it as ``repropagate_one_object_s``.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage as ndi

from napari_emseg.proofreading.repropagate import repropagate
from napari_emseg.proofreading.session import ProofreadingSession


def _typical_object(labels: np.ndarray, ref: int) -> int:
    """An object of median area among those that cross the whole stack on the reference."""
    plane = labels[ref]
    everywhere = np.ones(int(labels.max()) + 1, bool)
    for z in range(labels.shape[0]):
        everywhere &= np.bincount(labels[z].ravel(), minlength=everywhere.size) > 0
    area = np.bincount(plane.ravel(), minlength=everywhere.size)
    candidates = np.flatnonzero(everywhere & (area > 0))
    candidates = candidates[candidates != 0]
    if candidates.size == 0:
        candidates = np.flatnonzero(area[1:]) + 1
    order = candidates[np.argsort(area[candidates], kind="stable")]
    return int(order[order.size // 2])


def benchmark_repropagate_one_object(
    shape: tuple[int, int, int] = (30, 512, 512), repeats: int = 5, seed: int = 0
) -> float:
    """Median seconds to repropagate one object corrected on the middle slice.

    The stack is :func:`~napari_emseg.datasets.synthetic.make_synthetic_stack`; the labels are
    its ground truth and the membrane map its true membranes, precomputed as in the widget. The
    correction gives a typical neurite (median area among those crossing the whole stack) the
    membrane pixels around it on the reference slice; the session finds that one changed
    object, and :func:`repropagate` carries it through all the other slices. Setup is not
    timed.

    Examples
    --------
    >>> benchmark_repropagate_one_object((6, 64, 64), repeats=1) < 5.0
    True
    """
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    stack = make_synthetic_stack(shape, seed=seed)
    labels = stack.labels
    membrane = stack.membranes.astype(np.float32)
    ref = shape[0] // 2
    obj = _typical_object(labels, ref)
    session = ProofreadingSession()
    session.add_reference(ref)
    session.snapshot_reference(labels)
    corrected = labels.copy()
    grown = ndi.binary_dilation(labels[ref] == obj, iterations=2) & (labels[ref] == 0)
    corrected[ref][grown] = obj
    objects = session.changed_objects(corrected)
    times = []
    for _ in range(max(int(repeats), 1)):
        start = time.perf_counter()
        repropagate(
            stack.image,
            corrected,
            references=session.reference_slices,
            objects=objects,
            locked=session.locked,
            frozen_slices=session.frozen_slices(),
            membrane=membrane,
        )
        times.append(time.perf_counter() - start)
    return float(np.median(times))
